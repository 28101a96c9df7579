"""``sld inspect regs|log``: decode what a source shows, for people (tables) and machines (JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sld.errors import SourceError
from sld.formats.eventlog import EventLog, parse_log
from sld.formats.registers import TXT_PUB_BASE, TXT_SPACE_SIZE, TxtRegisters, from_securityfs, parse_registers
from sld.platform.source import Source, open_source
from sld.replay import replay
from sld.report import dump_json, table


def run(args: argparse.Namespace) -> int:
    if args.what == "log" and args.file:
        try:
            data = Path(args.file).read_bytes()
        except OSError as err:
            raise SourceError(f"cannot read: {err.strerror}", source=args.file) from None
        _show_log(parse_log(data), args, f"file:{args.file}")
        return 0
    with open_source(args.source) as source:
        if args.what == "regs":
            _show_registers(_registers(source), args, source.name)
        else:
            _show_log(_log(source), args, source.name)
    return 0


def _registers(source: Source) -> TxtRegisters:
    if source.securityfs is not None:
        return from_securityfs(source.securityfs.registers())
    assert source.memory is not None
    return parse_registers(source.memory.read(TXT_PUB_BASE, TXT_SPACE_SIZE, "TXT public config space"))


def _log(source: Source) -> EventLog:
    if source.securityfs is None:
        raise SourceError("this build reads the DRTM log from securityfs or --file; following the heap and "
                          "SLRT to it in physical memory is not implemented yet", source=source.name)
    return parse_log(source.securityfs.eventlog())


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


def _show_log(log: EventLog, args: argparse.Namespace, source: str) -> None:
    values = replay(log).values if args.pcrs else None
    if args.json:
        payload = {"source": source, "format": log.format, "banks": log.banks, "events": [
            {"index": e.index, "offset": e.offset, "pcr": e.pcr, "type": e.type, "type_name": e.type_name,
             "digests": e.digests, "data": e.data} for e in log.events]}
        if values is not None:
            payload["pcrs"] = {bank: {str(p): v for p, v in pcrs.items()} for bank, pcrs in values.items()}
        print(dump_json("inspect.log", payload))
        return
    print(f"{log.format} event log from {source}: {len(log.events)} events, banks {', '.join(log.banks)}")
    rows = []
    for e in log.events:
        digest = "  ".join(f"{b}:{d.hex()}" for b, d in e.digests.items())
        text = e.data.decode("ascii", "replace") if e.data.isascii() and e.data.strip(b"\0").isascii() else ""
        rows.append((e.index, e.pcr, e.type_name, digest, text.rstrip("\0")[:40] or f"{len(e.data)} bytes"))
    print(table(rows, ("#", "PCR", "TYPE", "DIGESTS", "DATA")))
    if values is not None:
        print()
        print(table(((f"PCR{p}", bank, v.hex()) for bank, pcrs in values.items() for p, v in pcrs.items()),
                    ("PCR", "BANK", "REPLAYED VALUE")))
