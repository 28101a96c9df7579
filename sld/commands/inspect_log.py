"""``sld inspect log``: every record of a DRTM (or any TPM) event log and the PCR values it replays to.

Records are rendered as they are walked, never gathered first: a bare log file (``--file``) is read a
chunk at a time (:func:`sld.formats.eventlog.stream_log`), so a log of millions of records is shown in
the memory of a few chunks. The output is the one ``sld inspect`` has always printed: the JSON of
:func:`sld.report.dump_json` (``json.dumps``, indent 2) and the table of :func:`sld.report.table`,
each written here a record at a time (tests/unit/test_inspect_log.py holds it to the earlier output).
The text table's column widths depend on every record, so its records are walked before a line is
printed (a malformed log is refused first); the records of a log of up to HELD_RECORDS are kept from
that walk and rendered from it, a longer one is walked a second time, so the table's memory stays
bounded too. The JSON is written in one walk, so a log found malformed part-way ends it there, with the
typed error on stderr and exit code 1.
"""

from __future__ import annotations

import json
import os
import sys
from binascii import hexlify
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial

from sld.errors import SourceError
from sld.formats.eventlog import RUN, Event, LogHeader, stream_runs
from sld.formats.names import EVENT_TYPES, event_type_name
from sld.replay import PcrChains
from sld.text import count

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from sld.formats.eventlog import EventLog

CHUNK = 1 << 20  # bytes read at a time from a log file
MAX_LOG_FILE = 1 << 30  # a log file larger than this is refused: no machine writes one
HELD_RECORDS = 1 << 17  # a table of up to this many records is rendered from its first walk (~0.5 KiB each)
Runs = Iterator[Sequence[Event]]  # a log's records, a few thousand at a time
# each byte -> 0 if printable ASCII, else 1: a translate without the deletion table it would build per call,
# then an int search (a bytes one tries it as an int first, at an exception's cost)
_UNPRINTABLE = bytes(0 if 0x20 <= b < 0x7F else 1 for b in range(256))
_TYPE_WIDTHS = {t: len(name) for t, name in EVENT_TYPES.items()}


def run(args: argparse.Namespace) -> int:
    """``sld inspect`` (the command's front door: only the log part is here, the rest is imported on use)."""
    if args.what != "log" or not args.file:
        from sld.commands.inspect import run as inspect_source

        return inspect_source(args)  # a log from a source is found by discover, then shown by show_log
    source = f"file:{args.file}"
    with _LogFile(args.file) as file:
        def walk() -> tuple[LogHeader, Runs]:
            os.lseek(file.fd, 0, os.SEEK_SET)
            return stream_runs(iter(partial(file.read, CHUNK), b""), file.size)

        _render(walk, args, source)
    return 0


def show_log(log: EventLog, args: argparse.Namespace, source: str) -> None:
    """A log parsed whole (from a source: securityfs, /dev/mem, an image)."""
    events = log.events
    _render(lambda: (log, (events[i : i + RUN] for i in range(0, len(events), RUN))), args, source)


class _LogFile:
    """A regular file (sld.platform.files: a FIFO, /dev/zero, a link to either is refused with a typed
    error, never a hang or a MemoryError; issue 17) of at most MAX_LOG_FILE bytes, read by ``read(n)``."""

    def __init__(self, path: str) -> None:
        from sld.platform.files import open_regular

        self.path = path
        self.fd = open_regular(path, path, follow=True)  # a link a user gives is followed, to a regular file
        self.size = os.fstat(self.fd).st_size
        if self.size > MAX_LOG_FILE:
            os.close(self.fd)
            raise SourceError(f"cannot read: larger than {MAX_LOG_FILE} bytes", source=path)

    def read(self, n: int) -> bytes:
        try:
            return os.read(self.fd, n)
        except OSError as err:
            raise SourceError(f"cannot read: {err.strerror}", source=self.path) from None

    def __enter__(self) -> _LogFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _render(walk: Callable[[], tuple[LogHeader, Runs]], args: argparse.Namespace, source: str) -> None:
    """Records are formatted as bytes (a third quicker than str) straight to stdout's buffer; the rest
    as print() would encode it. (The cycle collector is already off: bin/sld turns it off for every
    command, which is what spares this walk its passes over each run of new containers.)"""
    out = sys.stdout
    out.flush()
    write = out.buffer.write

    def say(text: str) -> None:
        write(text.encode(out.encoding, out.errors or "strict"))

    (_json if args.json else _text)(walk, args.pcrs, source, say, write)
    out.buffer.flush()


# ---- JSON -----------------------------------------------------------------------------------------


def _json(walk: Callable[[], tuple[LogHeader, Runs]], pcrs: bool, source: str,
          say: Callable[[str], None], write: Callable[[bytes], object]) -> None:
    from sld.report import dump_json

    header, runs = walk()
    payload: dict[str, object] = {"source": source, "format": header.format, "banks": header.banks,
                                  "events": [_MARK]}
    head, _ = dump_json("inspect.log", payload).split(_MARK_JSON)
    say(head.removesuffix("\n"))  # the list's newline only if it has an item: json.dumps writes [] for none
    chains = PcrChains(header.banks) if pcrs else None
    some = _json_events(runs, chains, write)
    if chains is not None:
        payload["pcrs"] = {bank: {str(p): v for p, v in values.items()} for bank, values in chains.values().items()}
    _, tail = dump_json("inspect.log", payload).split(_MARK_JSON)
    say((tail if some else tail.lstrip("\n ")) + "\n")


_MARK = "\x00events\x00"  # where the records go in the document json.dumps lays out
_MARK_JSON = "    " + json.dumps(_MARK)


def _json_events(runs: Runs, chains: PcrChains | None, write: Callable[[bytes], object]) -> bool:
    """Each record as json.dumps(indent=2) lays it out inside the ``events`` list, a run of records (at most
    :data:`sld.formats.eventlog.RUN`) replayed, formatted in one comprehension and written at a time; whether
    there was one."""
    templates = _Fragments(_json_template)  # banks a record lists -> the record's layout
    types = _Fragments(_json_type)  # type -> its number and name as they follow "type":
    add = chains.add if chains is not None else None
    sep = b"\n"
    for batch in runs:
        if add is not None:
            add(batch)
        write(sep + b",\n".join([
            templates[tuple(digests)] % (index, offset, pcr, types[etype], *map(hexlify, digests.values()),
                                         hexlify(data))
            for index, offset, pcr, etype, digests, data in batch]))
        sep = b",\n"
    return sep != b"\n"


class _Fragments(dict):  # type: ignore[type-arg]
    """Rendered pieces by what they depend on (a type number, a record's banks), each made once on first use."""

    def __init__(self, make: Callable[[Any], bytes], known: Mapping[Any, bytes] | None = None) -> None:
        super().__init__(known or {})
        self.make = make

    def __missing__(self, key: Any) -> bytes:
        piece = self[key] = self.make(key)
        return piece


def _json_template(banks: tuple[str, ...]) -> bytes:
    digests = ",\n".join(f"        {json.dumps(bank)}: \"%s\"" for bank in banks)
    return ('    {\n      "index": %d,\n      "offset": %d,\n      "pcr": %d,\n      "type": %s,\n'
            '      "digests": {\n' + digests + '\n      },\n      "data": "%s"\n    }').encode()


def _json_type(etype: int) -> bytes:
    """A type's number and its name, rendered once per type rather than per record."""
    return f'{etype},\n      "type_name": {json.dumps(event_type_name(etype))}'.encode()


# ---- text -----------------------------------------------------------------------------------------


def _text(walk: Callable[[], tuple[LogHeader, Runs]], pcrs: bool, source: str,
          say: Callable[[str], None], write: Callable[[bytes], object]) -> None:
    from sld.report import table

    header, runs = walk()
    chains = PcrChains(header.banks) if pcrs else None
    widths = _widths(runs, chains)  # first walk: how wide each column is, the replay, the records held
    say(f"{header.format} event log from {source}: {count(widths.count, 'event')}, banks {', '.join(header.banks)}\n")
    _text_rows(iter(widths.held) if widths.held is not None else walk()[1], widths, write)
    if chains is not None:
        rows = ((f"PCR{p}", bank, v.hex()) for bank, values in chains.values().items() for p, v in values.items())
        say("\n" + table(rows, ("PCR", "BANK", "REPLAYED VALUE")) + "\n")


_TEXT_HEADER = ("#", "PCR", "TYPE", "DIGESTS", "DATA")


class _Widths:
    """The widths :func:`sld.report.table` gives the record table (the widest cell of each column but
    the last, which is not padded), the width of the digests cell of each set of banks a record lists,
    the number of records, and the records themselves when there are at most HELD_RECORDS (else None)."""

    __slots__ = ("count", "index", "pcr", "type", "digests", "shapes", "held")

    def __init__(self, count: int, index: int, pcr: int, type: int, shapes: dict[tuple[str, ...], int],
                 held: list[Sequence[Event]] | None) -> None:
        self.count, self.index, self.pcr, self.type, self.shapes, self.held = count, index, pcr, type, shapes, held
        self.digests = max([len(_TEXT_HEADER[3]), *shapes.values()])


def _widths(runs: Runs, chains: PcrChains | None) -> _Widths:
    """The table's widths (and the replay, into ``chains``), keeping the records while there are at most
    HELD_RECORDS of them."""
    add = chains.add if chains is not None else None
    held: list[Sequence[Event]] | None = []
    count = last = 0
    pcrs: set[int] = set()
    types: set[int] = set()
    shapes: dict[tuple[str, ...], int] = {}  # banks a record lists -> its digests cell's width
    for batch in runs:
        if add is not None:
            add(batch)
        count += len(batch)
        if held is not None:
            if count <= HELD_RECORDS:
                held.append(batch)
            else:
                held = None
        last = batch[-1].index
        pcrs |= {ev.pcr for ev in batch}
        types |= {ev.type for ev in batch}
        for banks, digests in {tuple(ev.digests): ev.digests for ev in batch}.items():
            if banks not in shapes:  # "bank:hex" cells two apart; a bank's digests have one size in a log
                shapes[banks] = sum(len(bank) + 1 + 2 * len(d) for bank, d in digests.items()) + 2 * (len(banks) - 1)
    type_width = max((_TYPE_WIDTHS.get(t) or len(event_type_name(t)) for t in types), default=0)
    return _Widths(count, max(len(_TEXT_HEADER[0]), len(str(last))),
                   max(len(_TEXT_HEADER[1]), len(str(max(pcrs, default=0)))), max(len(_TEXT_HEADER[2]), type_width),
                   shapes, held)


def _text_rows(runs: Runs, widths: _Widths, write: Callable[[bytes], object]) -> None:
    w_index, w_pcr, w_type, w_digests = widths.index, widths.pcr, widths.type, widths.digests
    header = "  ".join(c.ljust(w) for c, w in zip(_TEXT_HEADER, (w_index, w_pcr, w_type, w_digests, 0), strict=True))
    write(header.rstrip().encode() + b"\n")

    def template(banks: tuple[str, ...]) -> bytes:  # the whole row but its values
        cell = "  ".join(f"{bank}:%s" for bank in banks)
        pad = " " * (w_digests - widths.shapes[banks])
        return f"%-{w_index}d  %-{w_pcr}d  %s  {cell}{pad}  %s".encode()

    templates = _Fragments(template)
    types = _Fragments(lambda etype: event_type_name(etype).ljust(w_type).encode(),
                       {t: name.ljust(w_type).encode() for t, name in EVENT_TYPES.items()})
    unprintable = _UNPRINTABLE
    for batch in runs:  # DATA: printable ASCII (its own text) in at most 40 characters, else its size
        write(b"\n".join([
            (templates[tuple(digests)] % (index, pcr, types[etype], *map(hexlify, digests.values()),
                                          shown[:40] if (shown := data.rstrip(b"\0")) and
                                          1 not in shown.translate(unprintable) else b"%d bytes" % len(data))).rstrip()
            for index, _, pcr, etype, digests, data in batch]) + b"\n")
