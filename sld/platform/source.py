"""Choosing where platform bytes come from: ``--source auto|securityfs[:DIR]|devmem|image:PATH|capture:FILE``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sld.errors import ConfigError, SourceError
from sld.platform.files import open_regular
from sld.platform.memory import DEV_MEM, FileMemory, ImageMemory, MappedMemory, PhysicalMemory
from sld.platform.securityfs import SLAUNCH_DIR, SecurityFs, SecurityFsView
from sld.vocab import SourceKind


@dataclass
class Source:
    """An opened source: physical memory (devmem, image), securityfs, or both absent facts.

    ``kind`` and ``name`` are reported with every verdict so an operator knows what was read.
    """

    kind: SourceKind
    name: str
    memory: PhysicalMemory | None = None
    securityfs: SecurityFsView | None = None

    def close(self) -> None:
        """Release what the source opened (a memory descriptor)."""
        if isinstance(self.memory, FileMemory):
            self.memory.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


PATH_ARGUMENT = {"auto": "never", "securityfs": "optional", "devmem": "never", "image": "required",
                 "capture": "required"}


def parse_spec(spec: str) -> tuple[str, str]:
    """(kind, argument) of a source spec, checked without opening anything (start-up, reload)."""
    kind, colon, arg = spec.partition(":")
    takes = PATH_ARGUMENT.get(kind)
    if takes is None or (takes == "never" and colon) or (takes == "required" and not arg):
        raise ConfigError(f"unknown source {spec!r}; expected auto, securityfs[:DIR], devmem, image:PATH or "
                          "capture:FILE (e.g. image:/var/tmp/sld.img)", key="source")
    return kind, arg


def open_source(spec: str = "auto") -> Source:
    """Open the source ``spec`` names; ``auto`` prefers securityfs (works under lockdown), then /dev/mem."""
    kind, arg = parse_spec(spec)
    if kind == "auto":
        if SecurityFs.present():
            return open_source("securityfs")
        if os.path.exists(DEV_MEM):
            return open_source("devmem")
        raise SourceError(
            f"no source readable: neither {SLAUNCH_DIR} (Secure Launch kernel) nor {DEV_MEM} exists", source="auto"
        )
    if kind == "securityfs":
        root = arg or SLAUNCH_DIR
        if not SecurityFs.present(root):
            raise SourceError("no slaunch/eventlog here: not a Secure Launch kernel", source=f"securityfs:{root}")
        fs = SecurityFs(root)
        return Source(SourceKind.SECURITYFS, fs.name, securityfs=fs)
    if kind == "devmem":
        return Source(SourceKind.DEVMEM, DEV_MEM, memory=MappedMemory(DEV_MEM))
    if kind == "capture" or is_capture(arg):
        return open_capture(arg)
    return Source(SourceKind.IMAGE, f"image:{arg}", memory=ImageMemory(arg, name=f"image:{arg}"))


def is_capture(path: str) -> bool:
    """Whether ``path`` starts as a capture does (gzip magic): ``image:`` hands such a file to capture. Here,
    not in sld.platform.capture: an image source never imports the capture reader (and zlib) it does not use."""
    try:
        fd = open_regular(path, path, follow=True)
    except SourceError:
        return False
    try:
        return os.pread(fd, 2, 0) == b"\x1f\x8b"
    finally:
        os.close(fd)


def open_capture(path: str) -> Source:
    """An ``sld capture`` file, read as what it holds: physical memory when it has any regions (the heap
    walk then runs as on /dev/mem), else the securityfs view alone (so verdicts skip heap and SLRT as
    they do on that machine)."""
    from sld.platform.capture import CapturedMemory, CapturedSecurityFs, read_capture

    cap = read_capture(path)
    name = f"capture:{path}"
    files = CapturedSecurityFs(cap.securityfs, name) if cap.securityfs else None
    if cap.regions:
        return Source(SourceKind.CAPTURE, name, memory=CapturedMemory(cap.regions, name), securityfs=files)
    if files is None:
        raise SourceError("the capture holds neither memory regions nor securityfs files", source=name)
    return Source(SourceKind.SECURITYFS, name, securityfs=files)
