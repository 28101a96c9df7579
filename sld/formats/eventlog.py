"""TPM event logs: the TPM 1.2 TXT event container, the TCG SHA-1 log and the TCG crypto-agile log.

One walk over the records, whichever the format (spec §4.1, §4.3; SDG App. G; TCG PC Client PFP §10):
its stop rules and record rules are written once, in :class:`Walk`, and a *head reader* per format
says where one record's head ends and what it holds. The fast readers here use ``struct``; the
construct declarations in :mod:`sld.formats.tcg` give the reference readers the same walk is run with
in the tests (corpus, built logs, hypothesis and fuzz input), so the two cannot drift apart.

Parsing never imports construct (a third of a cold start) and never opens a file: :func:`parse_log`
takes the log's bytes as a Region (they and their address, one value), :func:`stream_log` takes chunks
of a file from whoever reads them and yields records as it walks, so a million-record log is shown
without holding it.
"""

from __future__ import annotations

import struct
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cached_property
from itertools import chain, islice
from operator import itemgetter

from sld.errors import FormatError
from sld.formats._util import Region, region
from sld.formats.names import (
    ALGORITHMS,
    EV_NO_ACTION,
    SPEC_ID_SIGNATURE,
    STARTUP_LOCALITY,
    TXT_CONTAINER_SIGNATURE,
    event_type_name,
)
from sld.text import count
from sld.vocab import LogFormat

TYPE_CHECKING = False  # typing costs a log-parsing process more than its first thousand records
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    class _EventFields(NamedTuple):
        index: int  # type: ignore[assignment]  # the record's, not tuple.index
        offset: int
        pcr: int
        type: int
        digests: Mapping[str, bytes]
        data: bytes
else:
    _EventFields = namedtuple("_EventFields", "index offset pcr type digests data")


class Event(_EventFields):
    """One record: ``offset`` is its absolute address (physical address or file offset), ``digests``
    its digests by bank name in the order the record lists them (TCG_PCR_EVENT2.digests)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Event(index={self.index}, offset=0x{self.offset:x}, pcr={self.pcr}, type={self.type_name})"

    @property
    def type_name(self) -> str:
        """The event type's name (TCG PC Client PFP §10.4.1, SDG Table E-5/E-6, Secure Launch), or its hex."""
        return event_type_name(self.type)


_new_event = tuple.__new__  # an Event from its fields without a Python-level __new__ per record

# A head reader: (data, off, limit) -> (pcr, type, digests, head size, event size), or None when the
# head runs past ``limit``. ``digests`` is a mapping bank -> digest, or a list of (alg, digest) pairs
# that the walk checks against the Spec ID (the rules below are the walk's, not the reader's).
Head = tuple[int, int, "Mapping[str, bytes] | list[tuple[int, bytes]]", int, int]
HeadReader = Callable[[bytes, int, int], "Head | None"]

# No launch writes more records than this (a 64 KiB TXT log holds at most ~1,700); a log parsed whole
# (verification) is refused beyond it, so a padded buffer cannot cost the daemon gigabytes. Streaming
# (``sld inspect log``) holds one record at a time and has no such limit.
MAX_EVENTS = 65536
RUN = 4096  # records a walk hands out at a time: bounded, as a streamed log's memory must be


def _truncated(structure: str, fld: str, at: int) -> FormatError:
    return FormatError(structure, "truncated: the record runs past the end of the log", field=fld, offset=at)


class Walk:
    """The records of one log from ``start`` to ``limit``: the stop rules and record rules, once.

    ``stop_at_zero``: a record of type 0 and event size 0 ends the log, the zero-filled rest of its
    buffer (Linux __calc_tpm2_event_size and tpm1 get_event; spec §4.3): always for the SHA-1 formats,
    and for a crypto-agile log that the heap's NextRecordOffset does not bound (securityfs, a file).
    ``final`` says whether ``limit`` is the end of the log, or only of the bytes read so far: then a
    record running past it ends this part of the walk with ``more`` set, to go on once the next chunk
    is there (:func:`stream_log`). After each part, ``stop`` is the offset (into that part's Region) just
    past the last record walked and ``index`` the next record's index.
    """

    __slots__ = ("read_head", "common", "structure", "sizes", "names", "stop_at_zero", "index", "stop", "more")

    def __init__(self, read_head: HeadReader, common: CommonRecord | None, structure: str, sizes: Mapping[int, int],
                 stop_at_zero: bool, index: int) -> None:
        self.read_head = read_head
        self.common = common  # the layout most records share, read in one unpack (None: each by read_head)
        self.structure = structure  # the record's name in errors: TCG_PCR_EVENT or TCG_PCR_EVENT2
        self.sizes = sizes  # Spec ID algorithm id -> digest size: the digests a record may carry
        self.names = {alg: bank_name(alg) for alg in sizes}
        self.stop_at_zero = stop_at_zero
        self.index = index
        self.stop = 0
        self.more = False

    def records(self, log: Region, start: int, limit: int, final: bool = True) -> Iterator[Event]:
        """The records in ``log[start:limit]`` one at a time (see :meth:`runs`)."""
        return chain.from_iterable(self.runs(log, start, limit, final))

    def runs(self, log: Region, start: int, limit: int, final: bool = True) -> Iterator[list[Event]]:
        """The records in ``log[start:limit]``, numbered from ``index``, as lists of at most RUN records: a
        consumer then takes thousands at a time, not each through a generator.

        The loop reads the region's ``bytes`` (no copy when the region spans them) with ``struct``, so that
        each record's data is a ``bytes`` slice and its offset ``base + off``: the walk's cost per record."""
        data, base = bytes(log), log.base
        read_head, stop_at_zero, index, common = self.read_head, self.stop_at_zero, self.index, self.common
        self.more = False
        off = start
        run: list[Event] = []
        keep = run.append
        full = index + RUN  # the index at which the run is handed out
        while True:
            if common is not None:  # a run of common records, to which no rule below applies
                unpack, fsize, shape, expected, fields, banks = common.parts()
                pair, first, second = len(banks) == 2, banks[0], banks[-1]  # one bank: listed twice
                while off + fsize <= limit:
                    head = unpack(data, off)
                    if shape is not None and shape(head) != expected:
                        break
                    if pair:  # a dict display: three times quicker than dict(zip()), the walk's largest cost
                        pcr, etype, size, digest, other = fields(head)
                        named = {first: digest, second: other}
                    else:
                        pcr, etype, size, *listed = fields(head)
                        named = dict(zip(banks, listed))  # noqa: B905  (as many as the layout has)
                    end = off + fsize + size
                    if end > limit or (stop_at_zero and etype == 0 and size == 0):
                        break
                    keep(_new_event(Event, (index, base + off, pcr, etype, named, data[end - size : end])))
                    index += 1
                    off = end
                    if index == full:
                        yield run
                        run = []
                        keep, full = run.append, index + RUN
            if off >= limit:
                self.more = not final  # the bytes so far end with a record: the rest of the log follows
                break
            head = read_head(data, off, limit)
            if head is None:
                if not final:
                    self.more = True
                    break
                if stop_at_zero and not any(data[off:limit]):
                    off = limit  # fewer zero bytes than a record head: the zero-filled tail
                    break
                raise _truncated(self.structure, "header", base + off)
            pcr, etype, found, head_size, size = head
            digests = found if not isinstance(found, list) else self._checked(found, base + off) if found else {}
            if stop_at_zero and etype == 0 and size == 0:
                break
            if not digests:
                raise FormatError(self.structure, "the record carries no digest", field="count", offset=base + off)
            end = off + head_size + size
            if end > limit:
                if not final:
                    self.more = True
                    break
                raise _truncated(self.structure, "data", base + off)
            keep(_new_event(Event, (index, base + off, pcr, etype, digests, data[end - size : end])))
            index += 1
            off = end
            if index >= full:
                yield run
                run = []
                keep, full = run.append, index + RUN
        self.index, self.stop = index, off
        if run:
            yield run

    def _checked(self, pairs: list[tuple[int, bytes]], at: int) -> dict[str, bytes]:
        """Digests by bank: each algorithm one the Spec ID event lists, and at most once (spec §4.3)."""
        if len(pairs) > len(self.names):
            raise FormatError(self.structure, f"more digests than the {count(len(self.names), 'algorithm')} the "
                              "Spec ID event lists", field="count", offset=at)
        digests: dict[str, bytes] = {}
        for alg, digest in pairs:
            name = self.names.get(alg)
            if name is None:
                raise FormatError(self.structure, f"digest algorithm 0x{alg:04x} is not in the Spec ID event",
                                  field="digests.alg", offset=at)
            if name in digests:
                raise FormatError(self.structure, f"two {name} digests", field="digests", offset=at)
            digests[name] = digest
        return digests


# ---- head readers (struct) ------------------------------------------------------------------------

_SHA1_HEAD = struct.Struct("<II20sI")  # TCG_PCR_EVENT up to eventDataSize [SDG Table E-4]
_EVENT2_START = struct.Struct("<III")  # TCG_PCR_EVENT2 pcrIndex, eventType, digests.count
_ALG = struct.Struct("<H")
_EVENT_SIZE = struct.Struct("<I")
_CONTAINER_HEAD = struct.Struct("<20s12sBBBBIII")  # TxtContainerHeader, 48 bytes [SDG Table E-3]
_SPEC_ID_HEAD = struct.Struct("<16sIBBBBI")  # TCG_EfiSpecIDEventStruct up to numberOfAlgorithms
_ALG_SIZE = struct.Struct("<HH")


class CommonRecord:
    """The head layout most records of a log share, from its field names: one ``struct`` unpack reads it
    whole, and a record is of this layout when its ``expected`` fields hold the expected values (the
    digest count and algorithm ids the Spec ID event lists). The walk takes runs of such records in a
    tight loop and leaves every other record, and any a rule applies to, to the head reader."""

    __slots__ = ("layout", "expected", "banks", "_parts")

    def __init__(self, fields: list[tuple[str, str]], expected: Mapping[str, int], banks: list[str]) -> None:
        names = [name for name, _ in fields]
        self.layout = struct.Struct("<" + "".join(code for _, code in fields))
        self.expected = dict(expected)
        self.banks = banks
        shape = itemgetter(*(names.index(f) for f in expected)) if expected else None
        # itemgetter of one field gives the value, of several a tuple; one bank's digest is read twice
        digests = [names.index(bank) for bank in banks]
        banks_once = banks * 2 if len(banks) == 1 else banks
        fields_of = itemgetter(names.index("pcr"), names.index("type"), names.index("event_size"),
                               *(digests * 2 if len(digests) == 1 else digests))
        self._parts = (self.layout.unpack_from, self.layout.size, shape,
                       tuple(expected.values()) if len(expected) > 1 else next(iter(expected.values()), None),
                       fields_of, banks_once)

    def parts(self) -> tuple[Any, ...]:
        """What the walk's tight loop needs, bound once: unpack, size, the shape getter and its expected
        value, the getter of (pcr, type, event_size, digests...) in one call, and the banks of the digests."""
        return self._parts


def sha1_head_reader() -> tuple[HeadReader, CommonRecord]:
    """TCG_PCR_EVENT: one SHA-1 digest, a fixed 32-byte head."""
    unpack, size = _SHA1_HEAD.unpack_from, _SHA1_HEAD.size

    def read(data: bytes, off: int, limit: int) -> Head | None:
        if off + size > limit:
            return None
        pcr, etype, digest, esize = unpack(data, off)
        return pcr, etype, {"sha1": digest}, size, esize

    return read, CommonRecord([("pcr", "I"), ("type", "I"), ("sha1", "20s"), ("event_size", "I")], {}, ["sha1"])


def event2_head_reader(sizes: Mapping[int, int]) -> tuple[HeadReader, CommonRecord]:
    """TCG_PCR_EVENT2 for a log whose Spec ID event lists ``sizes`` (algorithm id -> digest size): the
    common record carries every listed digest in Spec ID order; any other is read digest by digest."""
    banks = [bank_name(alg) for alg in sizes]
    fields = [("pcr", "I"), ("type", "I"), ("count", "I")]
    for bank, n in zip(banks, sizes.values(), strict=True):
        fields += [(f"alg_{bank}", "H"), (bank, f"{n}s")]
    expected = {"count": len(sizes), **{f"alg_{bank}": alg for bank, alg in zip(banks, sizes, strict=True)}}
    common = CommonRecord([*fields, ("event_size", "I")], expected, banks)

    def read(data: bytes, off: int, limit: int) -> Head | None:
        return _read_event2(data, off, limit, sizes)

    return read, common


def _read_event2(data: bytes, off: int, limit: int, sizes: Mapping[int, int]) -> Head | None:
    """A record digest by digest: at most one more digest than the Spec ID lists, and none past an
    unlisted algorithm (whose size is unknown), for the walk to name what is wrong."""
    if off + _EVENT2_START.size > limit:
        return None
    pcr, etype, count = _EVENT2_START.unpack_from(data, off)
    p = off + _EVENT2_START.size
    pairs: list[tuple[int, bytes]] = []
    for _ in range(min(count, len(sizes) + 1)):
        if p + _ALG.size > limit:
            return None
        (alg,) = _ALG.unpack_from(data, p)
        size = sizes.get(alg)
        if size is None:
            return pcr, etype, [*pairs, (alg, b"")], 0, 0
        if p + _ALG.size + size > limit:
            return None
        pairs.append((alg, data[p + _ALG.size : p + _ALG.size + size]))
        p += _ALG.size + size
    if count > len(sizes):
        return pcr, etype, pairs, 0, 0
    if p + _EVENT_SIZE.size > limit:
        return None
    (esize,) = _EVENT_SIZE.unpack_from(data, p)
    return pcr, etype, pairs, p + _EVENT_SIZE.size - off, esize


# ---- the log and its header -----------------------------------------------------------------------


class LogHeader:
    """What a log's header says: its format, digest banks, and the Spec ID or TXT container fields."""

    def __init__(self, format: LogFormat, algorithms: tuple[tuple[str, int], ...], leading: tuple[Event, ...] = (),
                 spec_id: dict[str, object] | None = None, container: dict[str, int] | None = None) -> None:
        self.format = format
        self.algorithms = algorithms  # (bank, digest size) in Spec ID order
        self.leading = leading  # the records the header itself is (the crypto-agile Spec ID event)
        self.spec_id = spec_id or {}
        self.container = container or {}

    @property
    def banks(self) -> tuple[str, ...]:
        """The digest banks, in Spec ID order (sha1 alone for the SHA-1 formats)."""
        return tuple(bank for bank, _ in self.algorithms)


class EventLog(LogHeader):
    """A log parsed whole: the header's facts, every record, and where the records end."""

    def __init__(self, header: LogHeader, events: tuple[Event, ...], end: int) -> None:
        super().__init__(header.format, header.algorithms, header.leading, header.spec_id, header.container)
        self.events = events
        self.end = end  # absolute offset just past the last record

    @cached_property
    def startup_locality(self) -> int | None:
        """The locality a PCR0 StartupLocality event (EV_NO_ACTION) names: PCR0's reset value (PFP §10.4.5.3)."""
        return startup_locality(self.events)


def startup_locality(events: Iterable[Event]) -> int | None:
    """The locality of the first StartupLocality event (EV_NO_ACTION on PCR0, PFP §10.4.5.3), if any."""
    for ev in events:
        if ev.pcr == 0 and ev.type == EV_NO_ACTION and ev.data[:16] == STARTUP_LOCALITY and len(ev.data) > 16:
            return ev.data[16]
    return None


def bank_name(alg: int) -> str:
    """A digest bank's name: the TCG Algorithm Registry's, or the id for one sld has no name for."""
    return ALGORITHMS.get(alg, (f"alg_0x{alg:04x}", 0))[0]


class LogStart:
    """What the header says, and how and where the records after it are walked."""

    __slots__ = ("header", "walk", "start", "limit")

    def __init__(self, header: LogHeader, walk: Walk, start: int, limit: int) -> None:
        self.header, self.walk, self.start, self.limit = header, walk, start, limit


def _short(structure: str, log: Region, size: int, at: int, fld: str) -> FormatError:
    return FormatError(structure, f"truncated: the region holds only {size - at} bytes from here", field=fld,
                       offset=log.address(at))


def _container_start(log: Region, size: int) -> LogStart:
    if len(log) < _CONTAINER_HEAD.size:
        raise _short("TXT event container", log, size, 0, "next_event_offset")
    _, _, ver_major, ver_minor, _, _, csize, pcr_events, next_event = log.unpack(_CONTAINER_HEAD.format, 0)
    if not 48 <= pcr_events <= next_event <= csize:
        raise FormatError("TXT event container", "offsets violate 48 <= PCREventsOffset <= NextEventOffset <= "
                          f"ContainerSize ({pcr_events}, {next_event}, {csize})", field="next_event_offset",
                          offset=log.base)
    if next_event > size:
        raise FormatError("TXT event container", f"NextEventOffset {next_event} is past the {size}-byte buffer",
                          field="next_event_offset", offset=log.base)
    container = {"container_size": csize, "pcr_events_offset": pcr_events, "next_event_offset": next_event,
                 "container_ver_major": ver_major, "container_ver_minor": ver_minor}
    header = LogHeader(LogFormat.TPM12_CONTAINER, (("sha1", 20),), container=container)
    walk = Walk(*sha1_head_reader(), "TCG_PCR_EVENT", {}, True, 0)
    return LogStart(header, walk, _CONTAINER_HEAD.size, next_event)  # Secure Launch walks from header + 48 (v7-v14)


def _is_spec_id_header(log: Region) -> bool:
    if len(log) < _SHA1_HEAD.size + len(SPEC_ID_SIGNATURE):
        return False
    pcr, etype, digest, _ = log.unpack(_SHA1_HEAD.format, 0)
    return pcr == 0 and etype == EV_NO_ACTION and not any(digest) and log.copy(32, 48) == SPEC_ID_SIGNATURE


def _spec_id_algorithms(log: Region, size: int) -> tuple[dict[int, int], dict[str, object], int]:
    """The Spec ID event: algorithm id -> digest size, its other fields, and where vendorInfo ends."""
    at = _SHA1_HEAD.size
    if at + _SPEC_ID_HEAD.size > len(log):
        raise _short("Spec ID event", log, size, at, "number_of_algorithms")
    _, platform_class, minor, major, errata, uintn, count = log.unpack(_SPEC_ID_HEAD.format, at)
    if not count:
        raise FormatError("Spec ID event", "numberOfAlgorithms is 0", field="number_of_algorithms",
                          offset=log.address(at))
    p = at + _SPEC_ID_HEAD.size
    if p + _ALG_SIZE.size * count + 1 > len(log):
        raise _short("Spec ID event", log, size, at, "algorithms")
    listed = list(_ALG_SIZE.iter_unpack(log.copy(p, p + _ALG_SIZE.size * count)))
    sizes = dict(listed)
    if len(sizes) != count:
        twice = next(alg for k, (alg, _) in enumerate(listed) if alg in dict(listed[:k]))
        raise FormatError("Spec ID event", f"algorithm 0x{twice:04x} is listed twice", field="algorithms",
                          offset=log.address(at))
    for alg, n in sizes.items():
        known = ALGORITHMS.get(alg)
        if known and known[1] != n:
            raise FormatError("Spec ID event", f"{known[0]} digest size {n}, expected {known[1]}",
                              field="algorithms", offset=log.address(at))
    p += _ALG_SIZE.size * count
    vendor_end = p + 1 + log[p]
    if vendor_end > len(log):
        raise _short("Spec ID event", log, size, at, "vendor_info")
    spec_id = {"platform_class": platform_class, "spec_version_major": major, "spec_version_minor": minor,
               "spec_errata": errata, "uintn_size": uintn, "vendor_info": log.copy(p + 1, vendor_end)}
    return sizes, spec_id, vendor_end


def _agile_start(log: Region, size: int, end: int | None) -> LogStart:
    (head_size,) = log.unpack(_EVENT_SIZE.format, _SHA1_HEAD.size - _EVENT_SIZE.size)  # the 48-byte head is there
    if _SHA1_HEAD.size + head_size > len(log):
        raise _short("crypto-agile header event", log, size, 0, "data")
    sizes, spec_id, vendor_end = _spec_id_algorithms(log, size)
    if end is not None and end > size:
        raise FormatError("crypto-agile log", f"NextRecordOffset {end} is past the {size}-byte buffer",
                          field="next_record_offset", offset=log.base)
    # Some writers leave vendorInfo outside EventSize (tpm2-tools specid-vendordata fixture): read the
    # Spec ID from the bytes that follow and let the records start after whichever ends later.
    start = max(_SHA1_HEAD.size + head_size, vendor_end)
    spec_event = _new_event(Event, (0, log.base, 0, EV_NO_ACTION, {"sha1": bytes(20)}, log.copy(_SHA1_HEAD.size,
                                                                                                 start)))
    algorithms = tuple((bank_name(alg), n) for alg, n in sizes.items())
    header = LogHeader(LogFormat.CRYPTO_AGILE, algorithms, (spec_event,), spec_id=spec_id)
    walk = Walk(*event2_head_reader(sizes), "TCG_PCR_EVENT2", sizes, end is None, 1)
    limit = size if end is None else end
    _refuse_sha1_records(log, start, min(limit, len(log)), sizes)
    return LogStart(header, walk, start, limit)


def _refuse_sha1_records(log: Region, start: int, limit: int, sizes: Mapping[int, int]) -> None:
    """A Spec ID header followed by TCG_PCR_EVENT records (a writer that forgot its own header) is named as
    such: its first record read as TCG_PCR_EVENT2 would list no or unknown digests (spec §4.3)."""
    if start + _SHA1_HEAD.size > limit:
        return
    _, _, count = log.unpack(_EVENT2_START.format, start)
    (alg,) = log.unpack(_ALG.format, start + _EVENT2_START.size)
    if any(log.copy(start, start + _SHA1_HEAD.size)) and not (count and count <= len(sizes) and alg in sizes):
        raise FormatError("crypto-agile log", "the records after the Spec ID header are in the SHA-1 format "
                          "(TCG_PCR_EVENT), not TCG_PCR_EVENT2", field="records", offset=log.address(start))


def detect_format(log: Region) -> LogFormat:
    """From the bytes, never from LOG_INFO.format (spec §6)."""
    if log.copy(0, len(TXT_CONTAINER_SIGNATURE)) == TXT_CONTAINER_SIGNATURE:
        return LogFormat.TPM12_CONTAINER
    if _is_spec_id_header(log):
        return LogFormat.CRYPTO_AGILE
    return LogFormat.TCG_SHA1


def log_start(log: Region, size: int, end: int | None) -> LogStart:
    """The header of a log of ``size`` bytes whose first bytes are ``log`` (all of them, or the first
    chunks of a file being streamed), and the walk after it."""
    fmt = detect_format(log)
    if fmt == LogFormat.TPM12_CONTAINER:
        return _container_start(log, size)
    if fmt == LogFormat.CRYPTO_AGILE:
        return _agile_start(log, size, end)
    if size < _SHA1_HEAD.size:
        raise FormatError("event log", f"only {count(size, 'byte')}: not a TPM event log", offset=log.base)
    header = LogHeader(LogFormat.TCG_SHA1, (("sha1", 20),))
    return LogStart(header, Walk(*sha1_head_reader(), "TCG_PCR_EVENT", {}, True, 0), 0,
                    size if end is None else min(end, size))


def parse_log(log: Region | bytes, *, end: int | None = None) -> EventLog:
    """The whole log (at most MAX_EVENTS records), its format detected from the bytes; plain ``bytes`` are a
    log at address 0 (a file, the securityfs copy).

    ``end`` is the crypto-agile NextRecordOffset from the TXT heap; without it the walk stops at the
    first zero record, as for the securityfs copy that carries no offsets.
    """
    log = region(log)
    start = log_start(log, len(log), end)
    events = [*start.header.leading, *islice(start.walk.records(log, start.start, start.limit), MAX_EVENTS + 1)]
    if len(events) > MAX_EVENTS:
        raise FormatError("event log", f"more than {MAX_EVENTS} records: no launch logs that many",
                          offset=events[-1].offset)
    return EventLog(start.header, tuple(events), log.address(start.walk.stop))


def stream_log(chunks: Iterable[bytes], size: int) -> tuple[LogHeader, Iterator[Event]]:
    """A log of ``size`` bytes read as ``chunks``: its header now, and every record (the header's own
    first) as it is walked (:func:`stream_runs`, one record at a time)."""
    header, runs = stream_runs(chunks, size)
    return header, chain.from_iterable(runs)


def stream_runs(chunks: Iterable[bytes], size: int) -> tuple[LogHeader, Iterator[list[Event]]]:
    """A log of ``size`` bytes read as ``chunks`` of a file: its header now, and its records (the header's
    own first) in runs of at most RUN as they are walked, the next chunk taken only when a record runs past
    the bytes taken so far. Offsets are file offsets: a log in memory is parsed whole (:func:`parse_log`).

    The header is read from as many chunks as it needs, with the first record's head (what tells an agile
    header followed by SHA-1 records): the same bytes decide it as when the log is parsed whole.
    """
    it = iter(chunks)
    buf = b""
    while True:
        whole = len(buf) >= size
        if whole or len(buf) >= _SHA1_HEAD.size + len(SPEC_ID_SIGNATURE):  # what tells the formats apart
            try:
                start = log_start(Region(buf), size, None)
            except FormatError:
                if whole:
                    raise
            else:
                if whole or len(buf) >= start.start + _SHA1_HEAD.size:
                    return start.header, chain.from_iterable(_stream(start, buf, it))
        more = _take(it, max(len(buf), 1))  # as many bytes again: linear in a long header
        if not more:
            size = len(buf)  # the file ended early (it shrank): what was read is the log
        buf += more


def _take(chunks: Iterator[bytes], n: int) -> bytes:
    """At least ``n`` more bytes, or what is left."""
    taken: list[bytes] = []
    got = 0
    while got < n:
        chunk = next(chunks, b"")
        if not chunk:
            break
        taken.append(chunk)
        got += len(chunk)
    return b"".join(taken)


def _stream(start: LogStart, buf: bytes, chunks: Iterator[bytes]) -> Iterator[Iterable[list[Event]]]:
    """The log's runs of records, a walk per part of the bytes (chained by the caller: each run then
    comes straight from the walk, whatever the number of parts)."""
    walk, limit = start.walk, start.limit
    if start.header.leading:
        yield [list(start.header.leading)]
    done, off = 0, start.start  # log bytes before buf[0]; where the next record starts in buf
    while True:
        yield walk.runs(Region(buf, done), off, min(limit - done, len(buf)), done + len(buf) >= limit)
        if not walk.more:
            return
        rest = buf[walk.stop :]
        # the next chunk; as many bytes again if not one record fitted (linear in a long record)
        more = _take(chunks, len(rest) if walk.stop == off else 1)
        if not more:
            limit = done + len(buf)  # the file ended early (it shrank): what was read is the log
        done, buf, off = done + walk.stop, rest + more, 0

