"""``sld capture -o FILE``: everything sld reads from this machine, in one file ``--source`` reads back.

A source with physical memory (devmem, image, capture) contributes the TXT public config space, the
heap, the SLRT and the log at their addresses; securityfs contributes its files as the kernel returned
them and, on the machine's own securityfs, /dev/mem is tried as well for the heap and SLRT securityfs
does not export (lockdown may refuse: the capture then says why in its metadata). The file is written
afresh and renamed into place (sld.platform.files.replace_file), never through a planted link.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from sld import __version__
from sld.discover import MAX_LOG, Snapshot, discover
from sld.errors import SldError, SourceError
from sld.formats.registers import TXT_PUB_BASE, TXT_SPACE_SIZE
from sld.platform.capture import Capture, write_capture
from sld.platform.memory import PhysicalMemory
from sld.platform.securityfs import SLAUNCH_DIR, SecurityFsView
from sld.platform.source import Source, open_source
from sld.text import count


def run(args: argparse.Namespace) -> int:
    """``sld capture``: discover, gather the regions and files, write the capture."""
    meta: dict[str, Any] = {"captured_at": int(time.time()), "sld_version": __version__,
                            "kernel": os.uname().release}
    with open_source(args.source) as source:
        snap = discover(source)
        meta |= {"source": source.name, "kind": str(source.kind), "errors": _errors(snap)}
        files = _securityfs_files(source.securityfs, meta) if source.securityfs is not None else {}
        regions = _regions(snap, source.memory) if source.memory is not None else _devmem_regions(source, meta)
    if not regions and not files:
        raise SourceError("nothing readable to capture", source=source.name)
    write_capture(args.output, Capture(regions, files, meta))
    size = os.stat(args.output).st_size
    print(f"captured {count(len(regions), 'memory region')} and {count(len(files), 'securityfs file')} from "
          f"{source.name} into {args.output} ({count(size, 'byte')}); read it back with --source capture:{args.output}")
    return 0


def _errors(snap: Snapshot) -> dict[str, str]:
    return {stage: str(err) for stage, err in snap.errors.items()}


def _securityfs_files(fs: SecurityFsView, meta: dict[str, Any]) -> dict[str, bytes]:
    """The files as read, undecoded; one that cannot be read is left out and named in ``meta``."""
    out: dict[str, bytes] = {}
    try:
        out |= {f"txt/{name}": raw for name, raw in fs.registers().items()}
    except SldError as err:
        meta["securityfs_registers"] = str(err)
    try:
        out["eventlog"] = fs.eventlog()
    except SldError as err:
        meta["securityfs_eventlog"] = str(err)
    return out


def _devmem_regions(source: Source, meta: dict[str, Any]) -> dict[int, bytes]:
    """On the machine's own securityfs, what /dev/mem shows too (heap, SLRT), if the kernel lets us map it."""
    if source.name != f"securityfs:{SLAUNCH_DIR}":
        return {}
    try:
        with open_source("devmem") as devmem:
            snap = discover(devmem)
            assert devmem.memory is not None
            regions = _regions(snap, devmem.memory)
    except SldError as err:
        meta["devmem"] = str(err)
        return {}
    meta["devmem"] = {"errors": _errors(snap)}
    return regions


def _regions(snap: Snapshot, mem: PhysicalMemory) -> dict[int, bytes]:
    """Each structure discovery reached, read once (overlapping spans merged)."""
    spans = [(TXT_PUB_BASE, TXT_SPACE_SIZE)]
    if snap.heap is not None:
        spans.append((snap.heap.base, snap.heap.size))
    if snap.slrt is not None:
        spans.append((snap.slrt.address, max(snap.slrt.header["size"], 16)))
        info = snap.slrt.log_info
        if info is not None and 0 < info.size <= MAX_LOG:
            spans.append((info.addr, info.size))
    return {addr: mem.read(addr, size, f"capture of 0x{addr:x}") for addr, size in _merged(spans)}


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching (address, size) spans joined, so each byte is read and written once."""
    out: list[tuple[int, int]] = []
    for addr, size in sorted(spans):
        if out and addr <= out[-1][0] + out[-1][1]:
            start, length = out[-1]
            out[-1] = (start, max(length, addr + size - start))
        else:
            out.append((addr, size))
    return out
