"""The Secure Launch kernel's securityfs view: TXT registers as text and the DRTM event log.

Read first when present: it works under kernel lockdown, where /dev/mem is closed. It holds no heap
and no SLRT, so a verification from securityfs alone reports those facts as unavailable.
"""

from __future__ import annotations

import os
from typing import Protocol

from sld.platform.files import read_bounded

SLAUNCH_DIR = "/sys/kernel/security/slaunch"
SECURITYFS_REGISTERS = ("sts", "ests", "errorcode", "didvid", "ver_emif", "scratchpad", "e2sts")
MAX_EVENTLOG = 16 << 20
"""The largest event log sld reads from anywhere (LOG_INFO.size bound too): a DRTM log is KiBs."""
REGISTER_FILE_LIMIT = 64
"""A register file is at most 20 bytes (``0x`` + 16 digits + newline + NUL, spec §1.5)."""


class SecurityFsView(Protocol):
    """What discovery reads from securityfs: the live directory or the files a capture holds."""

    name: str

    def registers(self) -> dict[str, bytes]:
        """Each ``slaunch/txt/*`` file's bytes, undecoded (spec §1.5)."""
        ...

    def eventlog(self) -> bytes:
        """``slaunch/eventlog``: the whole log buffer."""
        ...


class SecurityFs:
    """Reads ``slaunch/eventlog`` and ``slaunch/txt/*`` under a root (the real one or a simulator's)."""

    def __init__(self, root: str = SLAUNCH_DIR) -> None:
        self.root = root  # a str: pathlib (and the urllib it imports) is 3 ms of a cold `sld verify`
        self.name = f"securityfs:{root}"

    @staticmethod
    def present(root: str = SLAUNCH_DIR) -> bool:
        """Whether ``root`` holds slaunch/eventlog: a Secure Launch kernel booted (spec §1.5)."""
        return os.path.exists(os.path.join(root, "eventlog"))

    def _read(self, rel: str, limit: int) -> bytes:
        """A file the kernel made: regular, not a link (O_NOFOLLOW), at most ``limit`` bytes (issue 17)."""
        return read_bounded(os.path.join(self.root, rel), limit, self.name)

    def registers(self) -> dict[str, bytes]:
        """Every exported register file's bytes (the kernel's ``%#0Nx\\n\\0`` text, spec §1.5), undecoded."""
        return {name: self._read(f"txt/{name}", REGISTER_FILE_LIMIT) for name in SECURITYFS_REGISTERS}

    def eventlog(self) -> bytes:
        """The whole log buffer (LOG_INFO.size bytes, zero-filled after the last record)."""
        return self._read("eventlog", MAX_EVENTLOG)
