"""``sld capture -o FILE``: the bytes sld reads (TXT public config space, heap, SLRT, event log) saved
at their physical addresses in a sparse image, so ``--source image:FILE`` replays a bug report
exactly as the machine showed it. A securityfs source is copied as a directory instead.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from sld.discover import discover
from sld.errors import SourceError
from sld.formats.registers import TXT_PUB_BASE, TXT_SPACE_SIZE
from sld.platform.image import write_image
from sld.platform.source import open_source
from sld.text import count


def run(args: argparse.Namespace) -> int:
    with open_source(args.source) as source:
        snap = discover(source)
        if source.securityfs is not None:
            shutil.copytree(source.securityfs.root, args.output, dirs_exist_ok=True)
            print(f"copied {source.name} to {args.output} (read it back with --source securityfs:{args.output})")
            return 0
        mem = source.memory
        assert mem is not None
        spans = [(TXT_PUB_BASE, TXT_SPACE_SIZE)]
        if snap.heap is not None:
            spans.append((snap.heap.base, snap.heap.size))
        if snap.slrt is not None:
            spans.append((snap.slrt.address, max(snap.slrt.header["size"], 16)))
            info = snap.slrt.log_info
            if info is not None and 0 < info.size <= 16 << 20:
                spans.append((info.addr, info.size))
        regions = {addr: mem.read(addr, size, "capture") for addr, size in _merged(spans)}
    if not regions:
        raise SourceError("nothing readable to capture", source=source.name)
    write_image(args.output, regions)
    meta = {"source": snap.source_name, "regions": {f"0x{a:x}": len(b) for a, b in sorted(regions.items())},
            "errors": {stage: str(err) for stage, err in snap.errors.items()}}
    Path(f"{args.output}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"captured {count(len(regions), 'region')} from {snap.source_name} into {args.output} "
          f"(read it back with --source image:{args.output})")
    return 0


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
