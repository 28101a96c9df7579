"""``sld inspect regs|heap|slrt|log``: decode what a source shows, for people (tables) and machines (JSON)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sld.commands.inspect_log import show_log
from sld.discover import STAGES, Snapshot, discover
from sld.errors import SourceError
from sld.formats.heap import Heap, HeapTable, OsMleData
from sld.formats.registers import TxtRegisters
from sld.formats.slrt import ENTITY_TYPES, Slrt, evt_info_text
from sld.platform.source import open_source
from sld.report import dump_json, jsonable, table
from sld.text import count
from sld.vocab import SourceKind


def run(args: argparse.Namespace) -> int:
    """``sld inspect regs|heap|slrt|log`` from a source: discover, then show the stage asked for."""
    with open_source(args.source) as source:
        snap = discover(source)
    stage = {"regs": "registers"}.get(args.what, args.what)
    value = _reached(snap, stage)
    shows: dict[str, Callable[[Any, argparse.Namespace, str], None]] = {
        "registers": _show_registers, "heap": lambda h, a, s: _show_heap(h, snap.os_mle, a, s), "slrt": _show_slrt,
        "log": show_log}
    show = shows[stage]
    show(value, args, snap.source_name)
    return 0


def _reached(snap: Snapshot, stage: str) -> Any:
    """The stage's object, or the typed error of the first stage on the way that failed."""
    for name in STAGES[: STAGES.index(stage) + 1]:
        if name in snap.errors:
            raise snap.errors[name]
    value = getattr(snap, stage)
    if value is None:
        why = "securityfs exports no heap or SLRT; use --source devmem or image:PATH" if snap.source_kind == \
            SourceKind.SECURITYFS else "HEAP.BASE/HEAP.SIZE are 0: no TXT heap, so nothing was launched"
        raise SourceError(f"no {stage}: {why}", source=snap.source_name)
    return value


def _flags(flags: dict[str, bool]) -> str:
    return " ".join(name for name, on in flags.items() if on) or "-"


def _show_registers(regs: TxtRegisters, args: argparse.Namespace, source: str) -> None:
    decoded = {"STS": regs.sts, "ESTS": regs.ests, "E2STS": regs.e2sts, "ERRORCODE": regs.errorcode,
               "DIDVID": regs.didvid}
    if args.json:
        print(dump_json("inspect.regs", {"source": source, "registers": regs.values, "decoded": decoded}))
        return
    err = regs.errorcode
    notes = {
        "STS": _flags(regs.sts), "ESTS": _flags(regs.ests), "E2STS": _flags(regs.e2sts),
        "ERRORCODE": f"{err.kind}: {err.name}" + ("" if err.kind in ("none", "success") else f" ({err.text})"),
        "DIDVID": "vendor 0x{vendor_id:04x} device 0x{device_id:04x} revision 0x{revision_id:x}".format(**regs.didvid),
    }
    rows = []
    for name, value in regs.values.items():
        shown = value.hex() if isinstance(value, bytes) else f"0x{value:016x}"
        rows.append((name, shown, notes.get(name, "")))
    print(f"TXT registers from {source}")
    print(table(rows, ("REGISTER", "VALUE", "DECODED")))


def _show_heap(heap: Heap, os_mle: OsMleData | None, args: argparse.Namespace, source: str) -> None:
    """The four tables; OsMleData in the shape discovery chose through the SLRT (raw when none was found)."""
    fields = {t.name: t.fields for t in heap.tables}
    if os_mle is not None:
        fields["OsMleData"] = {"layout": os_mle.layout, **os_mle.fields}
    if args.json:
        print(dump_json("inspect.heap", {"source": source, "base": heap.base, "size": heap.size,
                                         "tables": [_table_json(t, fields[t.name]) for t in heap.tables]}))
        return
    print(f"TXT heap from {source}: 0x{heap.base:x}, 0x{heap.size:x} bytes")
    for t in heap.tables:
        print(f"\n{t.name} @0x{t.address:x}, size 0x{t.size:x}")
        rows = [(k, _scalar(v)) for k, v in fields[t.name].items()]
        rows += [(f"element {e.name} @0x{e.offset:x}", _scalar(e.fields) if e.fields else f"{len(e.data)} bytes")
                 for e in t.elements if e.type != 0]
        rows += [(f"MDR {i}", "0x{address:x} +0x{length:x} type {type}".format(**m)) for i, m in enumerate(t.mdrs)]
        if not fields[t.name]:
            rows.append(("(raw)", t.data[:32].hex() + ("..." if len(t.data) > 32 else "")))
        print(table(rows))


def _table_json(t: HeapTable, fields: dict[str, Any]) -> dict[str, Any]:
    return {"name": t.name, "address": t.address, "size": t.size, "fields": fields,
            "elements": [{"type": e.type, "name": e.name, "offset": e.offset, "fields": e.fields,
                          "data": e.data} for e in t.elements], "mdrs": t.mdrs,
            **({"raw": t.data} if not fields else {})}


def _scalar(value: Any) -> str:
    if isinstance(value, int):
        return f"0x{value:x}" if value > 9 else str(value)
    if isinstance(value, dict):
        return " ".join(f"{k}={_scalar(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, bytes):
        return value.hex() if any(value) else count(len(value), 'zero byte')
    return str(value)


def _show_slrt(t: Slrt, args: argparse.Namespace, source: str) -> None:
    if args.json:
        print(dump_json("inspect.slrt", {"source": source, **jsonable(t), "log_info": t.log_info}))
        return
    h = t.header
    print(f"SLRT from {source} @0x{t.address:x}: revision {h['revision']}, architecture {h['architecture']}, "
          f"size {h['size']}/{h['max_size']}, layout {t.layout} (fits: {', '.join(t.candidates)})")
    rows = []
    for e in t.entries:
        fields = {k: v for k, v in e.fields.items() if k not in ("entries", "mtrr_state")}
        rows.append((f"0x{e.offset:x}", e.name, e.size, _scalar(fields)))
    print(table(rows, ("ADDRESS", "ENTRY", "SIZE", "FIELDS")))
    if t.policy:
        print()
        print(table(((p["pcr"], ENTITY_TYPES.get(p["entity_type"], p["entity_type"]), f"0x{p['entity']:x}",
                      f"0x{p['size']:x}", f"0x{p['flags']:x}", evt_info_text(p["evt_info"])) for p in t.policy),
                    ("PCR", "ENTITY", "ADDRESS", "SIZE", "FLAGS", "EVT_INFO")))
