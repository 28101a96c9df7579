"""The one place that follows pointers: registers -> heap -> OsMleData.slrt -> LOG_INFO -> event log.

Each stage's bytes are read through the source and handed to a pure parser. A stage that fails is
recorded with its typed error and nothing beyond it is followed (fail closed): a verdict can then say
which structure broke, at which address, instead of guessing from what came after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sld import trace
from sld.errors import FormatError, SldError
from sld.formats import acm, eventlog, heap, registers, slrt
from sld.formats._util import Region
from sld.formats.heap import OsMleData
from sld.platform.memory import PhysicalMemory
from sld.platform.securityfs import MAX_EVENTLOG
from sld.platform.source import Source

LOGGER = "sld.sources"
MAX_HEAP = 16 << 20
MAX_SLRT = 1 << 20
MAX_LOG = MAX_EVENTLOG
STAGES = ("registers", "heap", "slrt", "log")


@dataclass
class Snapshot:
    """Everything read from the platform, and the error that stopped a stage (if one did)."""

    source_kind: str
    source_name: str
    registers: registers.TxtRegisters | None = None
    heap: heap.Heap | None = None
    os_mle: OsMleData | None = None
    slrt: slrt.Slrt | None = None
    log_pointer: dict[str, Any] | None = None
    log: eventlog.EventLog | None = None
    log_data: bytes | None = None  # the log's bytes as read, up to its last record once parsed (sld attest)
    acm: acm.Acm | None = None  # the ACM header at SINIT.BASE, when that memory holds one (never via securityfs)
    errors: dict[str, SldError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every stage that ran succeeded."""
        return not self.errors

    @property
    def os_mle_layout(self) -> str | None:
        """The OsMleData shape the SLRT's generation chose (None before the SLRT stage succeeded)."""
        return self.os_mle.layout if self.os_mle is not None else None


def _stage(snap: Snapshot, name: str, fn: Callable[[], None]) -> bool:
    """Run one stage; record a typed failure under ``name`` and report whether it succeeded."""
    try:
        fn()
    except SldError as err:
        trace.debug(LOGGER, "%s from %s: %s", name, snap.source_name, err)
        snap.errors[name] = err
        return False
    trace.debug(LOGGER, "%s from %s: ok", name, snap.source_name)
    return True


def discover(source: Source) -> Snapshot:
    """Read as far as the platform lets us; securityfs gives registers and log without a heap walk.

    Physical memory, when the source has it, is walked in full: a capture holding both the securityfs
    files and the memory regions is read as the memory (everything securityfs has is there too).
    """
    snap = Snapshot(source.kind, source.name)
    fs = source.securityfs
    if fs is not None and source.memory is None:
        def regs_fs() -> None:
            snap.registers = registers.from_securityfs(fs.registers())

        def log_fs() -> None:
            _parse_log(snap, Region(fs.eventlog()))

        _stage(snap, "registers", regs_fs)
        _stage(snap, "log", log_fs)
        return snap
    mem = source.memory
    assert mem is not None, "a source has memory or securityfs"
    if not _stage(snap, "registers", lambda: _read_registers(snap, mem)):
        return snap
    assert snap.registers is not None
    _read_acm(snap, mem)
    if not snap.registers.heap_base or not snap.registers.heap_size:
        return snap  # no heap: nothing was launched (or TXT is off); the verdict says which
    for name, step in (("heap", _read_heap), ("slrt", _read_slrt), ("log", _read_log)):
        if not _stage(snap, name, lambda step=step: step(snap, mem)):  # type: ignore[misc]
            break
    return snap


def _read_acm(snap: Snapshot, mem: PhysicalMemory) -> None:
    """SINIT.BASE's ACM header (SDG A.1) if the memory there holds one; its absence is a fact, not an error."""
    assert snap.registers is not None
    base = snap.registers["SINIT.BASE"]
    try:
        head = mem.read(base, acm.HEADER_SIZE, "SINIT ACM header (SINIT.BASE)") if base else b""
    except SldError as err:
        trace.debug(LOGGER, "no ACM header at SINIT.BASE 0x%x: %s", base, err)
        return
    if acm.looks_like_acm(head):
        snap.acm = acm.parse_acm(Region(head, base))


def _read_registers(snap: Snapshot, mem: PhysicalMemory) -> None:
    page = mem.read(registers.TXT_PUB_BASE, registers.TXT_SPACE_SIZE, "TXT public config space")
    snap.registers = registers.parse_registers(Region(page, registers.TXT_PUB_BASE))


def _read_heap(snap: Snapshot, mem: PhysicalMemory) -> None:
    assert snap.registers is not None
    base, size = snap.registers.heap_base, snap.registers.heap_size
    if size > MAX_HEAP:
        raise FormatError("TXT registers", f"HEAP.SIZE 0x{size:x} exceeds {MAX_HEAP >> 20} MiB", field="HEAP.SIZE",
                          offset=registers.TXT_PUB_BASE + registers.REGISTERS["HEAP.SIZE"][0])
    snap.heap = heap.parse_heap(Region(mem.read(base, size, "TXT heap"), base))


def _read_slrt(snap: Snapshot, mem: PhysicalMemory) -> None:
    """Find the SLRT through OsMleData, parse it, and let its generation fix OsMleData's shape (spec §7.1)."""
    assert snap.heap is not None
    table = snap.heap.os_mle_data
    candidates = heap.os_mle_candidates(table)
    if not candidates:
        raise FormatError("OsMleData", "no Secure Launch layout fits (version is not 1 or the table is short)",
                          field="version", offset=table.data_address)
    address = _probe_slrt(candidates, mem, table)
    size = int.from_bytes(mem.read(address + 8, 4, "SLRT header"), "little")
    if not slrt.HEADER_SIZE <= size <= MAX_SLRT:
        raise FormatError("SLRT", f"size {size} is implausible", field="size", offset=address)
    snap.slrt = slrt.parse_slrt(Region(mem.read(address, size, "SLRT"), address))
    snap.os_mle = heap.os_mle_for(candidates, address, snap.slrt.layout)


def _probe_slrt(candidates: tuple[heap.OsMleData, ...], mem: PhysicalMemory, table: heap.HeapTable) -> int:
    """The first candidate's slrt pointer (newest shape first) at which the SLRT magic reads."""
    probes = []
    for cand in candidates:
        addr = cand.fields["slrt"]
        try:
            magic = int.from_bytes(mem.read(addr, 4, f"SLRT via OsMleData ({cand.layout} layout)"), "little")
        except SldError as err:
            probes.append(f"{cand.layout} slrt=0x{addr:x} unreadable ({err})")
            continue
        if magic == slrt.MAGIC:
            return int(addr)
        probes.append(f"{cand.layout} slrt=0x{addr:x} reads magic 0x{magic:08x}")
    raise FormatError("OsMleData", f"no layout points at an SLRT (magic 0x{slrt.MAGIC:08x} 'MTRD'): "
                      + "; ".join(probes), field="slrt", offset=table.data_address)


def _read_log(snap: Snapshot, mem: PhysicalMemory) -> None:
    """LOG_INFO gives the buffer; OsSinitData's element gives where the used part ends (spec §4.3)."""
    assert snap.slrt is not None and snap.heap is not None
    info = snap.slrt.log_info
    if info is None:
        raise FormatError("SLRT", "no LOG_INFO entry (SL_ERROR_SLRT_MISSING_ENTRY)", field="LOG_INFO",
                          offset=snap.slrt.address)
    entry = snap.slrt.entry("LOG_INFO")
    assert entry is not None
    if not 0 < info.size <= MAX_LOG:
        raise FormatError("SLRT LOG_INFO", f"size {info.size} is implausible", field="size", offset=entry.offset)
    pointer = heap.event_log_pointer(snap.heap.os_sinit_data)
    snap.log_pointer = pointer
    if pointer is not None and pointer["address"] != info.addr:
        raise FormatError("OsSinitData", f"{pointer['type']} points at 0x{pointer['address']:x} but SLRT LOG_INFO at "
                          f"0x{info.addr:x}; the kernel assumes they are equal", field=pointer["type"],
                          offset=snap.heap.os_sinit_data.data_address)
    end = pointer.get("next_record_offset") if pointer is not None else None
    _parse_log(snap, Region(mem.read(info.addr, info.size, "DRTM event log (SLRT LOG_INFO)"), info.addr), end=end)


def _parse_log(snap: Snapshot, log: Region, end: int | None = None) -> None:
    """Parse the log, keeping its bytes: up to the last record, or all of them if they do not parse."""
    try:
        snap.log = eventlog.parse_log(log, end=end)
    except SldError:
        snap.log_data = bytes(log)
        raise
    snap.log_data = bytes(log[: snap.log.end - log.base])
