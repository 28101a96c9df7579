"""The one door to tpm2-tss: tpm2-pytss's compiled cffi binding, its version guard, return codes, marshalling.

sld calls ESAPI (``Esys_*``) and the marshalling library (``Tss2_MU_*``) through the binding that tpm2-pytss
compiles against libtss2 (``tpm2_pytss._libtpm2_pytss``), without importing the tpm2_pytss package: its
Python layer imports cryptography and FAPI, 50 ms of every cold ``sld verify`` for nothing sld uses (see
docs/design.md, "TPM layer"). The binding's C declarations follow the tpm2-tss headers, but which of them a
tpm2-pytss release compiles in is that release's choice, so sld loads only the releases it is tested with.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from sld.errors import TpmError
from sld.vocab import TpmErrorKind

BINDING = "tpm2_pytss._libtpm2_pytss"
# tpm2-pytss releases whose binding sld's tests ran against (tests/swtpm/test_binding.py): Debian 12's
# python3-tpm2-pytss and PyPI's newest.
SUPPORTED = ("1.2.0", "3.0.0")
# [TPM 2.0 Part 2 §6.6 TPM_RC; tss2_common.h layers]
RC_LOCALITY = 0x907
RETRIABLE = {0x922: "TPM_RC_RETRY", 0x908: "TPM_RC_YIELDED", 0x90A: "TPM_RC_TESTING"}
TRANSPORT_LAYERS = (0xA0000, 0x70000, 0x80000, 0x90000)  # TCTI, ESAPI, SYS, MU: the transport side
TCTI_RC_NOT_IMPLEMENTED = 0xA0002
MAX_MARSHALLED = 4096  # larger than any TPM2B/TPMT sld marshals (TPM 2.0 Part 2: MAX_COMMAND_SIZE)

_loaded: tuple[Any, Any] | None = None


class Tss2Error(Exception):
    """A libtss2 return code other than success (``rc`` as TSS2_RC: layer in bits 16-23)."""

    def __init__(self, rc: int, message: str) -> None:
        super().__init__(f"{message} (0x{rc:x})")
        self.rc = rc

    @property
    def error(self) -> int:
        """The code without a format-one code's handle/parameter/session number (as tpm2-pytss decodes it)."""
        return 0x80 | (self.rc & 0x3F) if self.rc & 0x80 else self.rc


def classify(err: Exception, what: str) -> TpmError:
    """TSS2 and transport failures -> TpmError(kind): locality, retry, unavailable, command."""
    if isinstance(err, Tss2Error):
        rc, layer, code = err.rc, err.rc & 0xFF0000, err.error
        if layer == 0 and code == RC_LOCALITY:
            return TpmError(TpmErrorKind.LOCALITY, f"{what}: TPM_RC_LOCALITY", rc=rc)
        if layer == 0 and code in RETRIABLE:
            return TpmError(TpmErrorKind.RETRY,
                            f"{what}: the TPM kept answering {RETRIABLE[code]} (retry, yielded, testing)", rc=rc)
        if layer in TRANSPORT_LAYERS:
            return TpmError(TpmErrorKind.UNAVAILABLE, f"{what}: {err}", rc=rc)
        return TpmError(TpmErrorKind.COMMAND, f"{what}: {err}", rc=rc)
    return TpmError(TpmErrorKind.UNAVAILABLE, f"{what}: {err}")


def installed_version(package_dir: str) -> str | None:
    """The tpm2-pytss release whose package sits in ``package_dir``, from its dist-info directory's name.

    Checked by name (one stat per supported release, a directory listing only to name an unsupported one):
    importlib.metadata costs more than the TPM commands of a verification.
    """
    site = os.path.dirname(package_dir)
    for version in SUPPORTED:
        if os.path.isdir(os.path.join(site, f"tpm2_pytss-{version}.dist-info")):
            return version
    for name in sorted(os.listdir(site)):
        if name.startswith("tpm2_pytss-") and name.endswith((".dist-info", ".egg-info")):
            return name[len("tpm2_pytss-"):].rsplit(".", 1)[0]
    return None


def binding() -> tuple[Any, Any]:
    """(ffi, lib) of a supported tpm2-pytss's compiled binding, loaded once, without the tpm2_pytss package."""
    global _loaded
    if _loaded is None:
        _loaded = _load()
    return _loaded


def _load() -> tuple[Any, Any]:
    import importlib.machinery
    import importlib.util

    package = importlib.util.find_spec("tpm2_pytss")
    locations = package.submodule_search_locations if package else None
    spec = importlib.machinery.PathFinder.find_spec(BINDING, locations) if locations else None
    if not locations or spec is None or spec.loader is None:
        raise TpmError(TpmErrorKind.UNAVAILABLE, "tpm2-pytss (its compiled _libtpm2_pytss binding) is not installed")
    where = list(locations)[0]
    version = installed_version(where)
    if version not in SUPPORTED:
        raise TpmError(TpmErrorKind.UNAVAILABLE, f"tpm2-pytss {version or '(version unknown)'} in {where}: "
                       f"sld is tested with its binding in releases {', '.join(SUPPORTED)} only")
    module = sys.modules.get(BINDING)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        os.environ.setdefault("TSS2_LOG", "all+NONE")  # errors are ours to report, not esys's stderr chatter
        spec.loader.exec_module(module)
        sys.modules[BINDING] = module  # the package, if something imports it later, shares this one
    return module.ffi, module.lib


def check(rc: int) -> None:
    """Raise Tss2Error for a TSS2_RC other than success, with libtss2-rc's own decoding of it."""
    if rc:
        ffi, lib = binding()
        raise Tss2Error(rc, ffi.string(lib.Tss2_RC_Decode(rc)).decode(errors="replace"))


def marshal(type_name: str, value: Any) -> bytes:
    """``Tss2_MU_<type>_Marshal``: a cffi TPM structure -> the bytes the TPM 2.0 spec (Part 2) defines."""
    ffi, lib = binding()
    buffer, offset = ffi.new("uint8_t[]", MAX_MARSHALLED), ffi.new("size_t *")
    check(getattr(lib, f"Tss2_MU_{type_name}_Marshal")(value, buffer, MAX_MARSHALLED, offset))
    return bytes(ffi.buffer(buffer, offset[0]))



def unmarshal(type_name: str, data: bytes) -> Any:
    """``Tss2_MU_<type>_Unmarshal``: spec bytes (built with sld.formats.tpm2) -> a new cffi structure for ESAPI."""
    ffi, lib = binding()
    out, offset = ffi.new(f"{type_name} *"), ffi.new("size_t *")
    check(getattr(lib, f"Tss2_MU_{type_name}_Unmarshal")(data, len(data), offset, out))
    return out
