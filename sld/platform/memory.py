"""Physical memory: the real /dev/mem through mmap, a platform image through pread.

A platform image is a sparse file whose offset equals the physical address, so a test that reads an
image asks for exactly the addresses and sizes that a read of /dev/mem on a TXT server asks for; both
share the bounds checks of :class:`FileMemory`. They differ only in the last step, each for a reason:
- /dev/mem is mmap'd, never read(): on STRICT_DEVMEM kernels read() of TXT config space fails with
  EFAULT while mmap works (rig-notes §2);
- an image is pread: a file that shrinks while mapped kills the reader with SIGBUS, while pread of a
  shrunk file returns short, which is a typed error (issue 17).
"""

from __future__ import annotations

import errno
import mmap
import os
from typing import Protocol

from sld.errors import FormatError, SourceError
from sld.platform.files import open_regular

DEV_MEM = "/dev/mem"
MAX_READ = 64 << 20
"""No TXT structure is anywhere near this large; a bigger request is a corrupt size field."""


class PhysicalMemory(Protocol):
    """The one interface every stage above the platform reads bytes through."""

    name: str

    def read(self, addr: int, size: int, what: str) -> bytes:
        """Return ``size`` bytes at physical ``addr``; ``what`` names the structure for errors."""
        ...


def check_request(addr: int, size: int, what: str, limit: int | None, name: str) -> None:
    """Refuse (FormatError) a read no TXT structure can need: every PhysicalMemory checks this first."""
    if size < 0 or size > MAX_READ:
        raise FormatError(what, f"size {size} is not a plausible length (max {MAX_READ})", offset=addr)
    if addr < 0 or addr + size > 1 << 64:
        raise FormatError(what, "address is outside the 64-bit physical space", offset=addr)
    if limit is not None and addr + size > limit:
        raise FormatError(what, f"{size} bytes here run past the end of {name} (0x{limit:x})", offset=addr)


class FileMemory:
    """A descriptor whose offsets are physical addresses; the bounds every read is checked against."""

    def __init__(self, fd: int, name: str, limit: int | None) -> None:
        self.name = name
        self._fd = fd
        self._limit = limit  # an image's size when opened; a character device has none

    def close(self) -> None:
        """Release the descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, addr: int, size: int, what: str) -> bytes:
        """``size`` bytes at ``addr``, refused (FormatError) when the request cannot be a TXT structure."""
        check_request(addr, size, what, self._limit, self.name)
        return self._read(addr, size, what) if size else b""

    def _read(self, addr: int, size: int, what: str) -> bytes:
        raise NotImplementedError


class MappedMemory(FileMemory):
    """/dev/mem (or another memory device): read-only, page-aligned mmap windows."""

    def __init__(self, path: str = DEV_MEM, name: str | None = None) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_SYNC | os.O_CLOEXEC)
        except OSError as err:
            raise SourceError(f"cannot open: {err.strerror}", source=name or path) from None
        super().__init__(fd, name or path, None)

    def _read(self, addr: int, size: int, what: str) -> bytes:
        page = mmap.PAGESIZE
        start = addr - addr % page
        try:
            window = mmap.mmap(self._fd, addr + size - start, mmap.MAP_SHARED, mmap.PROT_READ, offset=start)
        except OSError as err:
            hint = " (kernel lockdown or STRICT_DEVMEM?)" if err.errno in (errno.EPERM, errno.EACCES) else ""
            raise SourceError(f"cannot map {what}: {err.strerror}{hint}", source=self.name, address=addr) from None
        try:
            return window[addr - start : addr - start + size]
        finally:
            window.close()


class ImageMemory(FileMemory):
    """A platform image: a regular file (a link to one is followed; never a FIFO or a device) read with pread."""

    def __init__(self, path: str, name: str | None = None) -> None:
        fd = open_regular(path, name or path, follow=True)
        super().__init__(fd, name or path, os.fstat(fd).st_size)

    def _read(self, addr: int, size: int, what: str) -> bytes:
        try:
            data = os.pread(self._fd, size, addr)
        except OSError as err:
            raise SourceError(f"cannot read {what}: {err.strerror}", source=self.name, address=addr) from None
        if len(data) != size:
            raise SourceError(f"{what}: only {len(data)} of {size} bytes could be read; the image shrank while it "
                              "was being read", source=self.name, address=addr)
        return data
