"""Physical memory through mmap: the real /dev/mem and a platform image share one code path.

A platform image is a sparse file whose offset equals the physical address, so every test that reads
an image exercises exactly the code that reads /dev/mem on a TXT server. mmap, never read(): on
STRICT_DEVMEM kernels read() of TXT config space fails with EFAULT while mmap works (rig-notes §2).
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
from typing import Protocol

from sld.errors import FormatError, SourceError

DEV_MEM = "/dev/mem"
MAX_READ = 64 << 20
"""No TXT structure is anywhere near this large; a bigger request is a corrupt size field."""


class PhysicalMemory(Protocol):
    """The one interface every stage above the platform reads bytes through."""

    name: str

    def read(self, addr: int, size: int, what: str) -> bytes:
        """Return ``size`` bytes at physical ``addr``; ``what`` names the structure for errors."""
        ...


class MappedMemory:
    """Read-only, page-aligned mmap windows of a memory device or an image file."""

    def __init__(self, path: str, name: str | None = None) -> None:
        self.path = path
        self.name = name or path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_SYNC | os.O_CLOEXEC)
        except OSError as err:
            raise SourceError(f"cannot open: {err.strerror}", source=self.name) from None
        st = os.fstat(self._fd)
        # A character device has no size; an image's size bounds every read.
        self._limit: int | None = st.st_size if stat.S_ISREG(st.st_mode) else None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> MappedMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, addr: int, size: int, what: str) -> bytes:
        if size < 0 or size > MAX_READ:
            raise FormatError(what, f"size {size} is not a plausible length (max {MAX_READ})", offset=addr)
        if addr < 0 or addr + size > 1 << 64:
            raise FormatError(what, "address is outside the 64-bit physical space", offset=addr)
        if self._limit is not None and addr + size > self._limit:
            raise FormatError(
                what, f"{size} bytes here run past the end of {self.name} (0x{self._limit:x})", offset=addr
            )
        if size == 0:
            return b""
        page = mmap.PAGESIZE
        start = addr - addr % page
        length = addr + size - start
        try:
            window = mmap.mmap(self._fd, length, mmap.MAP_SHARED, mmap.PROT_READ, offset=start)
        except OSError as err:
            hint = " (kernel lockdown or STRICT_DEVMEM?)" if err.errno in (errno.EPERM, errno.EACCES) else ""
            raise SourceError(f"cannot map {what}: {err.strerror}{hint}", source=self.name, address=addr) from None
        try:
            return window[addr - start : addr - start + size]
        finally:
            window.close()
