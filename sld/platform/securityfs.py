"""The Secure Launch kernel's securityfs view: TXT registers as text and the DRTM event log.

Read first when present: it works under kernel lockdown, where /dev/mem is closed. It holds no heap
and no SLRT, so a verification from securityfs alone reports those facts as unavailable.
"""

from __future__ import annotations

from pathlib import Path

from sld.errors import SourceError

SLAUNCH_DIR = "/sys/kernel/security/slaunch"
SECURITYFS_REGISTERS = ("sts", "ests", "errorcode", "didvid", "ver_emif", "scratchpad", "e2sts")


class SecurityFs:
    """Reads ``slaunch/eventlog`` and ``slaunch/txt/*`` under a root (the real one or a simulator's)."""

    def __init__(self, root: str = SLAUNCH_DIR) -> None:
        self.root = Path(root)
        self.name = f"securityfs:{root}"

    @staticmethod
    def present(root: str = SLAUNCH_DIR) -> bool:
        return (Path(root) / "eventlog").exists()

    def _read(self, rel: str) -> bytes:
        try:
            return (self.root / rel).read_bytes()
        except OSError as err:
            raise SourceError(f"cannot read {rel}: {err.strerror}", source=self.name) from None

    def registers(self) -> dict[str, bytes]:
        """Every exported register file's bytes (the kernel's ``%#0Nx\\n\\0`` text, spec §1.5), undecoded."""
        return {name: self._read(f"txt/{name}") for name in SECURITYFS_REGISTERS}

    def eventlog(self) -> bytes:
        """The whole log buffer (LOG_INFO.size bytes, zero-filled after the last record)."""
        return self._read("eventlog")
