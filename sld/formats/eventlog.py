"""TPM event logs: the TPM 1.2 TXT event container, the TCG SHA-1 log and the TCG crypto-agile log.

Each record format is declared once with construct (used to build, and as the reference the fast
parser is tested against). Walking a 100,000-event log through construct's interpreter costs seconds,
so :func:`parse_log` walks records with ``struct.unpack_from`` (spec §4.1, §4.3; SDG App. G).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from functools import cached_property
from operator import itemgetter

from sld.errors import FormatError
from sld.formats.names import (
    ALG_ID,
    ALGORITHMS,
    DATA_DIGEST_TYPES,
    EV_NO_ACTION,
    SPEC_ID_SIGNATURE,
    STARTUP_LOCALITY,
    TXT_CONTAINER_SIGNATURE,
    event_type_name,
)

# ---- declarations -------------------------------------------------------------------------------

# The headers, decoded with struct so that parsing a log never imports construct (a third of a cold
# start); sld.formats.tcg declares them with construct, and tests hold the two to the same bytes.
_CONTAINER_HEAD = struct.Struct("<20s12sBBBBIII")  # TxtContainerHeader, 48 bytes
_SPEC_ID_HEAD = struct.Struct("<16sIBBBBI")  # SpecIdEvent up to numberOfAlgorithms
_ALG_SIZE = struct.Struct("<HH")


# ---- data model ---------------------------------------------------------------------------------
# Plain slotted classes, not dataclasses: importing dataclasses (with inspect and re) and typing is
# half the start-up of a process that parses and replays a log, more than parsing 30,000 records.


class Event:
    """One record; ``offset`` is its absolute address (physical address or file offset)."""

    __slots__ = ("index", "offset", "pcr", "type", "digests", "data")

    def __init__(self, index: int, offset: int, pcr: int, type: int, digests: Mapping[str, bytes], data: bytes) -> None:
        self.index = index
        self.offset = offset
        self.pcr = pcr
        self.type = type
        self.digests = digests
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # equal by value, and not immutable

    def __repr__(self) -> str:
        return f"Event(index={self.index}, offset=0x{self.offset:x}, pcr={self.pcr}, type={self.type_name})"

    @property
    def type_name(self) -> str:
        return event_type_name(self.type)


Head = tuple  # (pcr, type, count, alg_0, digest_0 | None, ..., alg_n-1, digest_n-1 | None, event_size)


class Records:
    """A log's validated records as unpacked heads, one per record; Events are built only when asked for.

    Every head is laid out in Spec ID order (a digest the record lacks is None), so bank k's digest is
    ``head[4 + 2 * k]`` for every record: replay reads it without building 100,000 Events. Records
    lie back to back from ``first``, so where each starts follows from the heads (worked out on the
    first Event asked for, not while parsing).
    """

    __slots__ = ("data", "base", "banks", "first", "heads", "stop", "first_index", "fixed", "_starts")

    def __init__(self, data: bytes, base: int, banks: tuple[str, ...], first: int, heads: list[Head], stop: int,
                 first_index: int, fixed: int | None) -> None:
        self.data = data
        self.base = base
        self.banks = banks
        self.first = first  # offset of the first record in ``data``
        self.heads = heads
        self.stop = stop  # offset just past the last record
        self.first_index = first_index
        self.fixed = fixed  # header size of a TCG_PCR_EVENT; None: TCG_PCR_EVENT2 (sized by its digests)
        self._starts: list[int] | None = None

    def starts(self) -> list[int]:
        """Offset of each record in ``data``."""
        if self._starts is None:
            starts, off = [], self.first
            for head in self.heads:
                starts.append(off)
                off += head[-1] + (self.fixed or 16 + sum(2 + len(d) for d in head[4:-1:2] if d is not None))
            self._starts = starts
        return self._starts

    def digest_of(self, bank: str) -> Callable[[Head], bytes | None]:
        """Reads ``bank``'s digest from a head (None where the record lacks it, or the log has no such bank)."""
        if bank not in self.banks:
            return lambda head: None
        return itemgetter(4 + 2 * self.banks.index(bank))

    def event(self, i: int) -> Event:
        """The ``i``-th record (0-based in this run of records) as an Event."""
        starts = self.starts()
        head, start = self.heads[i], starts[i]
        end = starts[i + 1] if i + 1 < len(starts) else self.stop
        digests = {bank: d for bank, d in zip(self.banks, head[4:-1:2], strict=True) if d is not None}
        data = self.data[end - head[-1] : end]
        return Event(self.first_index + i, self.base + start, head[0], head[1], digests, data)


class EventLog:
    """A parsed log: its format, banks, records, and the header facts (Spec ID, TXT container)."""

    def __init__(self, format: str, algorithms: tuple[tuple[str, int], ...], leading: tuple[Event, ...],
                 records: Records, end: int, spec_id: dict[str, object] | None = None,
                 container: dict[str, int] | None = None) -> None:
        self.format = format  # tpm12-container | tcg-sha1 | crypto-agile
        self.algorithms = algorithms
        self.leading = leading  # records before ``records`` (the crypto-agile header event)
        self.records = records
        self.end = end  # absolute offset just past the last record
        self.spec_id = spec_id or {}
        self.container = container or {}

    @property
    def banks(self) -> tuple[str, ...]:
        return self.records.banks

    @cached_property
    def startup_locality(self) -> int | None:
        """The locality a PCR0 StartupLocality event (EV_NO_ACTION) names: PCR0's reset value (PFP spec)."""
        recs = self.records
        if EV_NO_ACTION not in map(itemgetter(1), recs.heads):  # at C speed: DRTM logs have none
            return None
        for i, head in enumerate(recs.heads):
            if head[0] == 0 and head[1] == EV_NO_ACTION:
                data = recs.event(i).data
                if data[:16] == STARTUP_LOCALITY and len(data) >= 17:
                    return data[16]
        return None

    @cached_property
    def events(self) -> tuple[Event, ...]:
        return self.leading + tuple(map(self.records.event, range(len(self.records.heads))))


# ---- parsing ------------------------------------------------------------------------------------

_U32x3 = struct.Struct("<III")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_SHA1_HEAD = struct.Struct("<II20sI")


def _truncated(structure: str, fld: str, at: int) -> FormatError:
    return FormatError(structure, "truncated: the record runs past the end of the log", field=fld, offset=at)


def _walk_sha1(data: bytes, start: int, limit: int, base: int) -> tuple[list[Head], int]:
    """TCG_PCR_EVENT records back to back until ``limit`` or a zero record (zero-filled buffer)."""
    heads: list[Head] = []
    off = start
    while off < limit:
        if off + 32 > limit:
            if not any(data[off:limit]):
                break
            raise _truncated("TCG_PCR_EVENT", "size", base + off)
        pcr, etype, digest, size = _SHA1_HEAD.unpack_from(data, off)
        if etype == 0 and size == 0 and not any(data[off : off + 32]):
            break
        if off + 32 + size > limit:
            raise _truncated("TCG_PCR_EVENT", "data", base + off)
        heads.append((pcr, etype, 1, ALG_ID["sha1"], digest, size))
        off += 32 + size
    return heads, off


def _walk_agile(
    data: bytes, start: int, limit: int, base: int, sizes: Mapping[int, int], stop_at_zero: bool
) -> tuple[list[Head], int]:
    """TCG_PCR_EVENT2 records; the Linux ``__calc_tpm2_event_size`` rules, as typed errors."""
    names = {alg: ALGORITHMS.get(alg, (f"alg_0x{alg:04x}", 0))[0] for alg in sizes}
    order = list(sizes)
    slot = {alg: 4 + 2 * k for k, alg in enumerate(order)}
    blank = [0, 0, 0]
    for alg in order:
        blank += [alg, None]
    blank.append(0)
    heads: list[Head] = []
    # The common record carries every Spec ID digest in Spec ID order: one unpack reads its whole
    # head, already in the normalized layout, and one comparison (count and alg ids) accepts it. Such
    # records are taken in the tight inner loop; anything else goes through the checked walk below.
    full = struct.Struct("<III" + "".join(f"H{sizes[a]}s" for a in order) + "I")
    unpack = full.unpack_from
    fsize = full.size
    last = limit - fsize
    shape = itemgetter(2, *range(3, 3 + 2 * len(order), 2))
    common = (len(order), *order)
    add_head = heads.append
    off = start
    while off < limit:
        while off <= last:
            head = unpack(data, off)
            p = off + fsize + head[-1]
            if p > limit or shape(head) != common or not (head[1] or head[-1] or not stop_at_zero):
                break
            add_head(head)
            off = p
        if off >= limit:
            break
        if off + 12 > limit:
            if stop_at_zero and not any(data[off:limit]):
                break
            raise _truncated("TCG_PCR_EVENT2", "header", base + off)
        pcr, etype, count = _U32x3.unpack_from(data, off)
        if count > len(sizes):
            raise FormatError(
                "TCG_PCR_EVENT2",
                f"{count} digests but the Spec ID event lists {len(sizes)} algorithms",
                field="count",
                offset=base + off,
            )
        p = off + 12
        slow = blank.copy()
        slow[:3] = pcr, etype, count
        for _ in range(count):
            if p + 2 > limit:
                raise _truncated("TCG_PCR_EVENT2", "digests", base + off)
            (alg,) = _U16.unpack_from(data, p)
            size = sizes.get(alg)
            if size is None:
                raise FormatError(
                    "TCG_PCR_EVENT2",
                    f"digest algorithm 0x{alg:04x} is not in the Spec ID event",
                    field="digests.alg",
                    offset=base + p,
                )
            if slow[slot[alg]] is not None:
                raise FormatError("TCG_PCR_EVENT2", f"two {names[alg]} digests", field="digests", offset=base + p)
            if p + 2 + size > limit:
                raise _truncated("TCG_PCR_EVENT2", "digests", base + off)
            slow[slot[alg]] = data[p + 2 : p + 2 + size]
            p += 2 + size
        if p + 4 > limit:
            if stop_at_zero and count == 0 and not any(data[off:limit]):
                break
            raise _truncated("TCG_PCR_EVENT2", "size", base + off)
        (esize,) = _U32.unpack_from(data, p)
        if stop_at_zero and etype == 0 and esize == 0:
            break  # zero-filled space ends the walk (spec §4.3)
        p += 4
        if p + esize > limit:
            raise _truncated("TCG_PCR_EVENT2", "data", base + off)
        slow[-1] = esize
        heads.append(tuple(slow))
        off = p + esize
    return heads, off


def _short(structure: str, data: bytes, at: int, fld: str, base: int) -> FormatError:
    return FormatError(structure, f"truncated: the region holds only {len(data) - at} bytes from here", field=fld,
                       offset=base + at)


def _parse_container(data: bytes, base: int) -> EventLog:
    if len(data) < _CONTAINER_HEAD.size:
        raise _short("TXT event container", data, 0, "next_event_offset", base)
    _, _, ver_major, ver_minor, _, _, size, pcr_events, next_event = _CONTAINER_HEAD.unpack_from(data)
    if not 48 <= pcr_events <= next_event <= size:
        raise FormatError(
            "TXT event container",
            "offsets violate 48 <= PCREventsOffset <= NextEventOffset <= "
            f"ContainerSize ({pcr_events}, {next_event}, {size})",
            field="next_event_offset",
            offset=base,
        )
    if next_event > len(data):
        raise FormatError(
            "TXT event container",
            f"NextEventOffset {next_event} is past the {len(data)}-byte buffer",
            field="next_event_offset",
            offset=base,
        )
    # Secure Launch walks from header + 48, not PCREventsOffset (v7-12, v14).
    heads, end = _walk_sha1(data, 48, next_event, base)
    container = {
        "container_size": size,
        "pcr_events_offset": pcr_events,
        "next_event_offset": next_event,
        "container_ver_major": ver_major,
        "container_ver_minor": ver_minor,
    }
    records = Records(data, base, ("sha1",), 48, heads, end, 0, 32)
    return EventLog("tpm12-container", (("sha1", 20),), (), records, base + end, container=container)


def _is_spec_id_header(data: bytes) -> bool:
    if len(data) < 32 + 16:
        return False
    pcr, etype, digest, _size = _SHA1_HEAD.unpack_from(data, 0)
    return pcr == 0 and etype == EV_NO_ACTION and not any(digest) and data[32:48] == SPEC_ID_SIGNATURE


def _parse_agile(data: bytes, base: int, end: int | None) -> EventLog:
    _, _, _, head_size = _SHA1_HEAD.unpack_from(data)  # detect_format saw the whole 48-byte head
    if 32 + head_size > len(data):
        raise _short("crypto-agile header event", data, 0, "data", base)
    # Some writers leave vendorInfo outside EventSize (tpm2-tools specid-vendordata fixture): read the
    # Spec ID from the bytes that follow and let the records start after whichever ends later.
    if 32 + _SPEC_ID_HEAD.size > len(data):
        raise _short("Spec ID event", data, 32, "number_of_algorithms", base)
    _, platform_class, minor, major, errata, uintn, count = _SPEC_ID_HEAD.unpack_from(data, 32)
    if not count:
        raise FormatError("Spec ID event", "numberOfAlgorithms is 0", field="number_of_algorithms", offset=base + 32)
    p = 32 + _SPEC_ID_HEAD.size
    if p + _ALG_SIZE.size * count + 1 > len(data):
        raise _short("Spec ID event", data, 32, "algorithms", base)
    sizes = dict(_ALG_SIZE.iter_unpack(data[p : p + _ALG_SIZE.size * count]))
    p += _ALG_SIZE.size * count
    vendor_end = p + 1 + data[p]
    if vendor_end > len(data):
        raise _short("Spec ID event", data, 32, "vendor_info", base)
    vendor_info = data[p + 1 : vendor_end]
    for alg, size in sizes.items():
        known = ALGORITHMS.get(alg)
        if known and known[1] != size:
            raise FormatError(
                "Spec ID event",
                f"{known[0]} digest size {size}, expected {known[1]}",
                field="algorithms",
                offset=base + 32,
            )
    if end is not None and end > len(data):
        raise FormatError(
            "crypto-agile log",
            f"NextRecordOffset {end} is past the {len(data)}-byte buffer",
            field="next_record_offset",
            offset=base,
        )
    start = max(32 + head_size, vendor_end)
    heads, stop = _walk_agile(data, start, len(data) if end is None else end, base, sizes, end is None)
    header = Event(0, base, 0, EV_NO_ACTION, {"sha1": bytes(20)}, data[32:start])
    algorithms = tuple((ALGORITHMS.get(a, (f"alg_0x{a:04x}", 0))[0], n) for a, n in sizes.items())
    spec_id = {
        "platform_class": platform_class,
        "spec_version_major": major,
        "spec_version_minor": minor,
        "spec_errata": errata,
        "uintn_size": uintn,
        "vendor_info": vendor_info,
    }
    records = Records(data, base, tuple(name for name, _ in algorithms), start, heads, stop, 1, None)
    return EventLog("crypto-agile", algorithms, (header,), records, base + stop, spec_id=spec_id)


def detect_format(data: bytes) -> str:
    if data[:20] == TXT_CONTAINER_SIGNATURE:
        return "tpm12-container"
    if _is_spec_id_header(data):
        return "crypto-agile"
    return "tcg-sha1"


def parse_log(data: bytes | memoryview, *, base: int = 0, end: int | None = None) -> EventLog:
    """Parse any of the three formats, detected from the bytes (never from LOG_INFO.format, spec §6).

    ``end`` is the crypto-agile NextRecordOffset from the TXT heap; without it the walk stops at the
    first zero record, as for the securityfs copy that carries no offsets.
    """
    data = bytes(data)
    fmt = detect_format(data)
    if fmt == "tpm12-container":
        return _parse_container(data, base)
    if fmt == "crypto-agile":
        return _parse_agile(data, base, end)
    if len(data) < 32:
        raise FormatError("event log", f"only {len(data)} bytes: not a TPM event log", offset=base)
    heads, stop = _walk_sha1(data, 0, len(data) if end is None else min(end, len(data)), base)
    records = Records(data, base, ("sha1",), 0, heads, stop, 0, 32)
    return EventLog("tcg-sha1", (("sha1", 20),), (), records, base + stop)


# ---- payload checks -----------------------------------------------------------------------------


def digest_mismatches(log: EventLog) -> list[tuple[Event, str]]:
    """Events of DATA_DIGEST_TYPES whose digest in some bank is not the hash of their data."""
    import hashlib

    bad = []
    for ev in log.events:
        if ev.type not in DATA_DIGEST_TYPES:
            continue
        for bank, digest in ev.digests.items():
            if bank not in hashlib.algorithms_available:
                continue
            forms = {ev.data, ev.data[:-1] if ev.data.endswith(b"\0") else ev.data}
            if all(hashlib.new(bank, form).digest() != digest for form in forms):
                bad.append((ev, bank))
    return bad
