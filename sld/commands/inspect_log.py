"""``sld inspect log``: every record of a DRTM (or any TPM) event log and the PCR values it replays to.

Records are rendered as they are walked, never gathered first: a bare log file (``--file``) is read a
chunk at a time (:func:`sld.formats.eventlog.stream_log`), so a log of millions of records is shown in
the memory of a few chunks. The output is the one ``sld inspect`` has always printed: the JSON of
:func:`sld.report.dump_json` (``json.dumps``, indent 2) and the table of :func:`sld.report.table`,
each written here a record at a time (tests/unit/test_inspect_log.py holds it to the earlier output).
The text table's column widths depend on every record, so its records are walked twice (and a
malformed log is refused before a line is printed); the JSON is written in one walk, so a log found
malformed part-way ends it there, with the typed error on stderr and exit code 1.
"""

from __future__ import annotations

import json
import os
import sys
from binascii import hexlify
from collections.abc import Callable, Iterable, Iterator
from functools import partial

from sld.errors import SourceError
from sld.formats.eventlog import Event, LogHeader, stream_log
from sld.formats.names import EVENT_TYPES, event_type_name
from sld.replay import PcrChains
from sld.text import count

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from sld.formats.eventlog import EventLog

CHUNK = 1 << 20  # bytes read at a time from a log file
MAX_LOG_FILE = 1 << 30  # a log file larger than this is refused: no machine writes one
BATCH = 2048  # records rendered per write
_PRINTABLE = bytes(range(0x20, 0x7F))
_JSON_TYPE_NAMES = {t: json.dumps(name).encode() for t, name in EVENT_TYPES.items()}
_TYPE_WIDTHS = {t: len(name) for t, name in EVENT_TYPES.items()}


def run(args: argparse.Namespace) -> int:
    """``sld inspect`` (the command's front door: only the log part is here, the rest is imported on use)."""
    if args.what != "log" or not args.file:
        from sld.commands.inspect import run as inspect_source

        return inspect_source(args)  # a log from a source is found by discover, then shown by show_log
    source = f"file:{args.file}"
    with _LogFile(args.file) as file:
        def walk() -> tuple[LogHeader, Iterator[Event]]:
            os.lseek(file.fd, 0, os.SEEK_SET)
            return stream_log(iter(partial(file.read, CHUNK), b""), file.size)

        _render(walk, args, source)
    return 0


def show_log(log: EventLog, args: argparse.Namespace, source: str) -> None:
    """A log parsed whole (from a source: securityfs, /dev/mem, an image)."""
    _render(lambda: (log, iter(log.events)), args, source)


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


def _render(walk: Callable[[], tuple[LogHeader, Iterator[Event]]], args: argparse.Namespace, source: str) -> None:
    """Records are formatted as bytes (a third quicker than str) straight to stdout's buffer; the rest
    as print() would encode it."""
    out = sys.stdout
    out.flush()
    write = out.buffer.write

    def say(text: str) -> None:
        write(text.encode(out.encoding, out.errors or "strict"))

    (_json if args.json else _text)(walk, args.pcrs, source, say, write)
    out.buffer.flush()


# ---- JSON -----------------------------------------------------------------------------------------


def _json(walk: Callable[[], tuple[LogHeader, Iterator[Event]]], pcrs: bool, source: str,
          say: Callable[[str], None], write: Callable[[bytes], object]) -> None:
    from sld.report import dump_json

    header, events = walk()
    payload: dict[str, object] = {"source": source, "format": header.format, "banks": header.banks,
                                  "events": [_MARK]}
    head, _ = dump_json("inspect.log", payload).split(_MARK_JSON)
    say(head.removesuffix("\n"))  # the list's newline only if it has an item: json.dumps writes [] for none
    chains = PcrChains(header.banks) if pcrs else None
    some = _json_events(events, chains, write)
    if chains is not None:
        payload["pcrs"] = {bank: {str(p): v for p, v in values.items()} for bank, values in chains.values().items()}
    _, tail = dump_json("inspect.log", payload).split(_MARK_JSON)
    say((tail if some else tail.lstrip("\n ")) + "\n")


_MARK = "\x00events\x00"  # where the records go in the document json.dumps lays out
_MARK_JSON = "    " + json.dumps(_MARK)


def _json_events(events: Iterable[Event], chains: PcrChains | None, write: Callable[[bytes], object]) -> bool:
    """Each record as json.dumps(indent=2) lays it out inside the ``events`` list; whether there was one."""
    templates: dict[tuple[str, ...], bytes] = {}
    names = _JSON_TYPE_NAMES
    add = chains.add if chains is not None else None
    batch: list[bytes] = []
    keep = batch.append
    sep = b"\n"
    for ev in events:
        index, offset, pcr, etype, digests, data = ev
        banks = tuple(digests)
        template = templates.get(banks) or templates.setdefault(banks, _json_template(banks))
        name = names.get(etype) or json.dumps(event_type_name(etype)).encode()
        keep(template % (index, offset, pcr, etype, name, *map(hexlify, digests.values()), hexlify(data)))
        if add is not None:
            add(ev)
        if len(batch) == BATCH:
            write(sep + b",\n".join(batch))
            batch.clear()
            sep = b",\n"
    if batch:
        write(sep + b",\n".join(batch))
    return sep != b"\n" or bool(batch)


def _json_template(banks: tuple[str, ...]) -> bytes:
    digests = ",\n".join(f"        {json.dumps(bank)}: \"%s\"" for bank in banks)
    return ('    {\n      "index": %d,\n      "offset": %d,\n      "pcr": %d,\n      "type": %d,\n'
            '      "type_name": %s,\n      "digests": {\n' + digests + '\n      },\n      "data": "%s"\n    }').encode()


# ---- text -----------------------------------------------------------------------------------------


def _text(walk: Callable[[], tuple[LogHeader, Iterator[Event]]], pcrs: bool, source: str,
          say: Callable[[str], None], write: Callable[[bytes], object]) -> None:
    from sld.report import table

    header, events = walk()
    chains = PcrChains(header.banks) if pcrs else None
    widths = _widths(events, chains)  # first walk: how wide each column is, and the replay
    say(f"{header.format} event log from {source}: {count(widths.count, 'event')}, banks {', '.join(header.banks)}\n")
    _, events = walk()
    _text_rows(events, widths, write)
    if chains is not None:
        rows = ((f"PCR{p}", bank, v.hex()) for bank, values in chains.values().items() for p, v in values.items())
        say("\n" + table(rows, ("PCR", "BANK", "REPLAYED VALUE")) + "\n")


_TEXT_HEADER = ("#", "PCR", "TYPE", "DIGESTS", "DATA")


class _Widths:
    """The widths :func:`sld.report.table` gives the record table (the widest cell of each column but
    the last, which is not padded), and the number of records."""

    __slots__ = ("count", "index", "pcr", "type", "digests")

    def __init__(self, count: int, index: int, pcr: int, type: int, digests: int) -> None:
        self.count, self.index, self.pcr, self.type, self.digests = count, index, pcr, type, digests


def _widths(events: Iterable[Event], chains: PcrChains | None) -> _Widths:
    add = chains.add if chains is not None else None
    count = last = top_pcr = type_width = 0
    widths = _TYPE_WIDTHS
    shapes: dict[tuple[str, ...], int] = {}  # banks a record lists -> its digests cell's width
    for ev in events:
        index, _, pcr, etype, digests, _ = ev
        count += 1
        last = index
        if pcr > top_pcr:
            top_pcr = pcr
        width = widths.get(etype) or len(event_type_name(etype))
        if width > type_width:
            type_width = width
        banks = tuple(digests)
        if banks not in shapes:  # "bank:hex" cells two apart; a bank's digests have one size in a log
            shapes[banks] = sum(len(bank) + 1 + 2 * len(d) for bank, d in digests.items()) + 2 * (len(banks) - 1)
        if add is not None:
            add(ev)
    digest_width = max(shapes.values(), default=0)
    return _Widths(count, max(len(_TEXT_HEADER[0]), len(str(last))), max(len(_TEXT_HEADER[1]), len(str(top_pcr))),
                   max(len(_TEXT_HEADER[2]), type_width), max(len(_TEXT_HEADER[3]), digest_width))


def _text_rows(events: Iterable[Event], widths: _Widths, write: Callable[[bytes], object]) -> None:
    w_index, w_pcr, w_type, w_digests = widths.index, widths.pcr, widths.type, widths.digests
    header = "  ".join(c.ljust(w) for c, w in zip(_TEXT_HEADER, (w_index, w_pcr, w_type, w_digests, 0), strict=True))
    write(header.rstrip().encode() + b"\n")
    templates: dict[tuple[str, ...], bytes] = {}
    types = {t: name.ljust(w_type).encode() for t, name in EVENT_TYPES.items()}
    batch: list[bytes] = []
    keep = batch.append
    for index, _, pcr, etype, digests, data in events:
        banks = tuple(digests)
        template = templates.get(banks)
        if template is None:  # the whole row but its values: a bank's digests have one size in a log
            cell = "  ".join(f"{bank}:%s" for bank in banks)
            pad = " " * (w_digests - len(cell % tuple(d.hex() for d in digests.values())))
            template = templates[banks] = f"%-{w_index}d  %-{w_pcr}d  %s  {cell}{pad}  %s".encode()
        name = types.get(etype) or event_type_name(etype).ljust(w_type).encode()
        shown = data.rstrip(b"\0")  # printable ASCII (its own text) in at most 40 characters, else its size
        text = shown[:40] if shown and not shown.translate(None, _PRINTABLE) else b"%d bytes" % len(data)
        keep((template % (index, pcr, name, *map(hexlify, digests.values()), text)).rstrip())
        if len(batch) == BATCH:
            write(b"\n".join(batch) + b"\n")
            batch.clear()
    if batch:
        write(b"\n".join(batch) + b"\n")
