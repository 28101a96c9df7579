"""The heap walk at its bound: a 16 MiB TXT heap whose BiosData holds 8-byte extended elements (2M of
them), next to a maximal event log (16 MiB, the LOG_INFO.size cap, filled by as many records as the
parser accepts), in one platform image.

Runs what an operator runs, the installed command, each in a fresh process:
- `sld inspect heap --source image:IMG` against its peer `txt-stat --heap` (tboot) reading the same image
  bind-mounted over /dev/mem in a private mount namespace (needs root and unshare; without them the
  peer is skipped and absolute times are printed), both printing the heap as text to a pipe;
- `sld verify --mode validate` of that image against the simulator's swtpm (absolute time: no tool
  does the same work).
Before the walk was linear, a 1 MiB heap of such elements took 9.6 s and this one about 30 minutes.
Run as root from the checkout: PYTHONPATH=. .venv/bin/python benchmarks/heap_walk.py
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _platform import SLD, compile_sld, sim_down, sim_up

from sld.formats import heap, registers, slrt
from sld.formats._util import Region, build
from sld.formats.eventlog import MAX_EVENTS, parse_log
from sld.formats.tcg import NewEvent, build_crypto_agile
from sld.platform.image import write_image
from sld.sim.builder import HEAP_BASE, SLRT_BASE, build_platform

HEAP_AT, HEAP_SIZE = 0x60000000, 16 << 20
LOG_AT, LOG_SIZE = 0x62000000, 16 << 20
TXT_STAT = 'mount -t tmpfs none /dev && touch /dev/mem && mount --bind "$0" /dev/mem && exec txt-stat --heap'
RUNS = 3


def _bios_data(table: heap.HeapTable, room: int) -> bytes:
    """The clean BiosData with as many 8-byte CUSTOM elements as fit in ``room`` bytes before END."""
    head = build(heap.BiosData, table.fields, "BiosData").ljust(36, b"\0")
    known = b"".join(build(heap.Element, {"type": e.type, "data": e.data}, "element") for e in table.elements
                     if e.type != heap.ELEMENT_END)
    end = build(heap.Element, {"type": heap.ELEMENT_END, "data": b""}, "element")
    filler = build(heap.Element, {"type": 4, "data": b""}, "element")  # CUSTOM, no payload: 8 bytes
    return head + known + filler * ((room - len(head) - len(known) - len(end)) // 8) + end


def _maximal_log(banks: tuple[str, ...], events: list[NewEvent]) -> bytes:
    """The launch's events, then PCR23 events up to the parser's record cap (MAX_EVENTS, header included),
    their data sized so the records fill the 16 MiB buffer."""
    size = len(build_crypto_agile(banks, events))
    count = MAX_EVENTS - 1 - len(events)
    overhead = len(build_crypto_agile(banks, [*events, _filler(banks, 0, 0)])) - size
    data = (LOG_SIZE - size) // count - overhead
    return build_crypto_agile(banks, [*events, *(_filler(banks, i, data) for i in range(count))], size=LOG_SIZE)


def _filler(banks: tuple[str, ...], i: int, size: int) -> NewEvent:
    data = i.to_bytes(8, "little").ljust(size, b"\0")
    return NewEvent(23, 0xD, {b: hashlib.new(b, data).digest() for b in banks}, data)


def build_image(path: Path) -> tuple[int, int]:
    """The image; returns (heap elements, log events)."""
    platform = build_platform("clean")
    clean = heap.parse_heap(Region(platform.heap, HEAP_BASE))
    log = parse_log(platform.log)
    banks = tuple(log.banks)
    big_log = _maximal_log(banks, [NewEvent(e.pcr, e.type, e.digests, e.data) for e in log.events[1:]])
    used = parse_log(big_log).end
    table = slrt.parse_slrt(Region(platform.slrt, SLRT_BASE))
    entries = [(e.name, {**e.fields, "addr": LOG_AT, "size": LOG_SIZE} if e.name == "LOG_INFO" else e.fields)
               for e in table.entries]
    sinit = clean.os_sinit_data
    pointer = {"address": LOG_AT, "allocated_size": LOG_SIZE, "first_record_offset": 0, "next_record_offset": used}
    os_sinit = heap.build_table("OsSinitData", sinit.fields, [(heap.ELEMENT_LOG_PTR2_1, pointer)])
    rest = [clean.os_mle_data.data, os_sinit, clean.sinit_mle_data.data]
    bios = _bios_data(clean.bios_data, HEAP_SIZE - 8 - sum(len(t) + 8 for t in rest))
    regs = dict(platform.registers, **{"HEAP.BASE": HEAP_AT, "HEAP.SIZE": HEAP_SIZE})
    page = registers.build_registers(regs)
    write_image(path, {registers.TXT_PRIV_BASE: page, registers.TXT_PUB_BASE: page,
                       SLRT_BASE: slrt.build_slrt(table.layout, entries, max_size=table.header["max_size"]),
                       HEAP_AT: heap.build_heap([bios, *rest], HEAP_SIZE), LOG_AT: big_log})
    elements = heap.parse_heap(Region(heap.build_heap([bios, *rest], HEAP_SIZE), HEAP_AT)).bios_data.elements
    return len(elements), len(parse_log(big_log).events)


def best(cmd: list[str]) -> tuple[float, int, int]:
    """Best wall time of RUNS runs, with the exit code and the bytes printed by the last one."""
    times, code, out = [], 0, 0
    for _ in range(RUNS):
        t0 = time.perf_counter()
        run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
        code, out = run.returncode, len(run.stdout)
    return min(times), code, out


def main() -> None:
    compile_sld()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        image = root / "big.img"
        elements, events = build_image(image)
        print(f"image: {HEAP_SIZE >> 20} MiB heap, BiosData with {elements} extended elements; "
              f"{LOG_SIZE >> 20} MiB log with {events} events; best of {RUNS} runs, fresh processes")
        inspect, code, out = best([*SLD, "inspect", "heap", "--source", f"image:{image}"])
        print(f"sld inspect heap:            {inspect:7.2f} s  (exit {code}, {out >> 20} MiB printed)")
        if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("txt-stat"):
            peer, code, out = best(["unshare", "-m", "--propagation", "private", "sh", "-c", TXT_STAT, str(image)])
            print(f"txt-stat --heap (peer):      {peer:7.2f} s  (exit {code}, {out >> 20} MiB printed)")
            print(f"ratio sld inspect heap / txt-stat --heap: {inspect / peer:.2f}")
        else:
            print("txt-stat --heap (peer): skipped (needs root, unshare and tboot's txt-stat)")
        info = sim_up(root)
        try:
            verify, code, _ = best([*SLD, "verify", "--local", "--mode", "validate", "--json", "--source",
                                    f"image:{image}", "--tcti", info["tcti"]])
        finally:
            sim_down(root)
        print(f"sld verify --mode validate:  {verify:7.2f} s  (exit {code}; the filler events are PCR23's, so the "
              "DRTM PCRs still match the simulator's TPM)")


if __name__ == "__main__":
    main()
