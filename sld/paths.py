"""Where sld looks by default: one light home (no imports) shared by the configuration, the CLI, the
client and the TPM layer, so importing the configuration never loads the client or the TPM binding."""

DEFAULT_CONFIG = "/etc/sld/sld.toml"
DEFAULT_SOCKET = "/run/sld/control.sock"
DEFAULT_TCTI = "device:/dev/tpmrm0"  # the kernel's TPM resource manager
