"""The capture file: everything sld read from one machine, in one file that ``--source`` reads back.

A bug report must work on the machines it is for: on a Secure Launch kernel the registers and the log
come from securityfs, while the heap and the SLRT are only in physical memory. A capture holds both
kinds: the securityfs files as the kernel returned them, and each physical region (TXT config space,
heap, SLRT, log) as bytes with its address. It is a gzip'd tar (self-describing: ``tar tzf`` lists
it, ``sld-capture.json`` says what it holds and where from) of only the bytes read, so a platform
whose image is 4 GiB apparent is a file of a few KiB that survives being attached to a ticket.

Layout (member names are the format):
  sld-capture.json          {"format": "sld-capture", "version": 1, "source", "kind", "regions", ...}
  memory/0x<16 hex digits>  the bytes at that physical address
  securityfs/eventlog       slaunch/eventlog as read
  securityfs/txt/<name>     slaunch/txt/<name> as read

A capture arrives from elsewhere, so reading one trusts nothing: only those names, only regular
members, each no larger than a real structure, in bounded number; a broken archive is a SourceError.
"""

from __future__ import annotations

import io
import json
import os
import re
import zlib
from collections.abc import Mapping
from typing import Any, BinaryIO

from sld.errors import SourceError
from sld.platform.files import open_regular, replace_file
from sld.platform.memory import MAX_READ, check_request
from sld.platform.securityfs import MAX_EVENTLOG, REGISTER_FILE_LIMIT, SECURITYFS_REGISTERS
from sld.records import Record

TYPE_CHECKING = False  # tarfile is imported where a capture is read or written: other sources never pay for it
if TYPE_CHECKING:
    import tarfile

META = "sld-capture.json"
FORMAT = "sld-capture"
VERSION = 1
MAX_MEMBERS = 64
MAX_TOTAL = 128 << 20
_MEMORY = re.compile(r"memory/0x([0-9a-f]{16})")
_LIMITS = {META: 1 << 20, "securityfs/eventlog": MAX_EVENTLOG,
           **{f"securityfs/txt/{name}": REGISTER_FILE_LIMIT for name in SECURITYFS_REGISTERS}}
"""Every member name a capture may hold besides memory/0x..., with the most bytes it can take."""


class Capture(Record):
    """A capture's contents: ``regions`` (physical address -> bytes), ``securityfs`` (file -> bytes), ``meta``."""

    regions: Mapping[int, bytes]
    securityfs: Mapping[str, bytes]
    meta: Mapping[str, Any]


def write_capture(path: str | os.PathLike[str], capture: Capture) -> None:
    """Write ``capture`` to ``path`` (a new file renamed over it: never through a planted link)."""
    meta = {"format": FORMAT, "version": VERSION, **capture.meta,
            "regions": [{"address": f"0x{a:x}", "size": len(b)} for a, b in sorted(capture.regions.items())],
            "securityfs": sorted(capture.securityfs)}
    members = {META: (json.dumps(meta, indent=2) + "\n").encode()}
    members |= {f"memory/0x{addr:016x}": data for addr, data in sorted(capture.regions.items())}
    members |= {f"securityfs/{name}": data for name, data in sorted(capture.securityfs.items())}

    def fill(f: BinaryIO) -> None:
        import tarfile

        with tarfile.open(fileobj=f, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, int(capture.meta.get("captured_at", 0))
                tar.addfile(info, io.BytesIO(data))

    replace_file(path, fill)


def read_capture(path: str) -> Capture:
    """The capture at ``path``, every member checked against the layout above."""
    import tarfile

    source = f"capture:{path}"
    fd = open_regular(path, source, follow=True)
    try:
        with os.fdopen(fd, "rb") as f, tarfile.open(fileobj=f, mode="r:gz") as tar:
            return _members(tar, source)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise SourceError(f"not a readable capture ({type(err).__name__}: {err})", source=source) from None


def _members(tar: tarfile.TarFile, source: str) -> Capture:
    regions: dict[int, bytes] = {}
    files: dict[str, bytes] = {}
    meta: dict[str, Any] | None = None
    total = 0
    for count, member in enumerate(tar, 1):
        if count > MAX_MEMBERS:
            raise SourceError(f"more than {MAX_MEMBERS} members", source=source)
        name = member.name
        memory = _MEMORY.fullmatch(name)
        limit = MAX_READ if memory else _LIMITS.get(name)
        if limit is None or not member.isreg():
            raise SourceError(f"member {name!r} is not part of a capture", source=source)
        if member.size > limit or total + member.size > MAX_TOTAL:
            raise SourceError(f"member {name!r} holds {member.size} bytes, more than a capture can", source=source)
        total += member.size
        stream = tar.extractfile(member)
        data = stream.read(member.size) if stream is not None else b""
        if len(data) != member.size:
            raise SourceError(f"member {name!r} is cut short", source=source)
        if memory:
            regions[int(memory.group(1), 16)] = data
        elif name == META:
            meta = _meta(data, source)
        else:
            files[name.removeprefix("securityfs/")] = data
    if meta is None:
        raise SourceError(f"no {META}: not an sld capture", source=source)
    return Capture(regions, files, meta)


def _meta(data: bytes, source: str) -> dict[str, Any]:
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError):
        raise SourceError(f"{META} is not JSON", source=source) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise SourceError(f"{META} does not describe a version {VERSION} {FORMAT}", source=source)
    return meta


class CapturedMemory:
    """Physical memory as captured: a read must lie inside one captured region (nothing else was read)."""

    def __init__(self, regions: Mapping[int, bytes], name: str) -> None:
        self.name = name
        self._regions = sorted(regions.items())

    def read(self, addr: int, size: int, what: str) -> bytes:
        """``size`` bytes at ``addr`` from the one captured region that holds them all."""
        check_request(addr, size, what, None, self.name)
        for start, data in self._regions:
            if start <= addr and addr + size <= start + len(data):
                return data[addr - start : addr - start + size]
        raise SourceError(f"{what} ({size} bytes) was not captured", source=self.name, address=addr)


class CapturedSecurityFs:
    """The securityfs files as captured, offered as :class:`sld.platform.securityfs.SecurityFs` offers them."""

    def __init__(self, files: Mapping[str, bytes], name: str) -> None:
        self.name = name
        self._files = files

    def _file(self, rel: str) -> bytes:
        try:
            return self._files[rel]
        except KeyError:
            raise SourceError(f"securityfs {rel} was not captured", source=self.name) from None

    def registers(self) -> dict[str, bytes]:
        """The ``slaunch/txt/*`` files' bytes, undecoded."""
        return {name: self._file(f"txt/{name}") for name in SECURITYFS_REGISTERS}

    def eventlog(self) -> bytes:
        """``slaunch/eventlog`` as read."""
        return self._file("eventlog")
