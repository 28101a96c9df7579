"""TPM event logs: the TPM 1.2 TXT event container, the TCG SHA-1 log and the TCG crypto-agile log.

Each record format is declared once with construct (used to build, and as the reference the fast
parser is tested against). Walking a 100,000-event log through construct's interpreter costs seconds,
so :func:`parse_log` walks records with ``struct.unpack_from`` (spec §4.1, §4.3; SDG App. G).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import construct as cs

from sld.errors import FormatError
from sld.formats._util import build, parse_at

# TPM2 algorithm ids -> (bank name, digest size) [spec §4.3; TCG Algorithm Registry]
ALGORITHMS: dict[int, tuple[str, int]] = {
    0x0004: ("sha1", 20),
    0x000B: ("sha256", 32),
    0x000C: ("sha384", 48),
    0x000D: ("sha512", 64),
    0x0012: ("sm3_256", 32),
}
ALG_ID = {name: alg for alg, (name, _) in ALGORITHMS.items()}
DIGEST_SIZE = {name: size for name, size in ALGORITHMS.values()}

EV_NO_ACTION = 0x3
SLAUNCH_START = 0x503
SLAUNCH_END = 0x504

EVENT_TYPES: dict[int, str] = {
    # TCG PC Client PFP
    0x0: "EV_PREBOOT_CERT",
    0x1: "EV_POST_CODE",
    0x2: "EV_UNUSED",
    0x3: "EV_NO_ACTION",
    0x4: "EV_SEPARATOR",
    0x5: "EV_ACTION",
    0x6: "EV_EVENT_TAG",
    0x7: "EV_S_CRTM_CONTENTS",
    0x8: "EV_S_CRTM_VERSION",
    0x9: "EV_CPU_MICROCODE",
    0xA: "EV_PLATFORM_CONFIG_FLAGS",
    0xB: "EV_TABLE_OF_DEVICES",
    0xC: "EV_COMPACT_HASH",
    0xD: "EV_IPL",
    0xE: "EV_IPL_PARTITION_DATA",
    0xF: "EV_NONHOST_CODE",
    0x10: "EV_NONHOST_CONFIG",
    0x11: "EV_NONHOST_INFO",
    0x12: "EV_OMIT_BOOT_DEVICE_EVENTS",
    0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    0x80000002: "EV_EFI_VARIABLE_BOOT",
    0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION",
    0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
    0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    0x80000006: "EV_EFI_GPT_EVENT",
    0x80000007: "EV_EFI_ACTION",
    0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x80000009: "EV_EFI_HANDOFF_TABLES",
    0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2",
    0x8000000C: "EV_EFI_VARIABLE_BOOT2",
    0x80000010: "EV_EFI_HCRTM_EVENT",
    0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
    0x800000E1: "EV_EFI_SPDM_FIRMWARE_BLOB",
    0x800000E2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
    # Intel TXT [SDG Table E-5/E-6; Windows SDK SIPAEV_TXT_*]
    0x401: "EVTYPE_PCRMAPPING",
    0x402: "EVTYPE_HASH_START",
    0x403: "EVTYPE_COMBINED_HASH",
    0x404: "EVTYPE_MLE_HASH",
    0x40A: "EVTYPE_BIOSAC_REG_DATA",
    0x40B: "EVTYPE_CPU_SCRTM_STAT",
    0x40C: "EVTYPE_LCP_CONTROL_HASH",
    0x40D: "EVTYPE_ELEMENTS_HASH",
    0x40E: "EVTYPE_STM_HASH",
    0x40F: "EVTYPE_OSSINITDATA_CAP_HASH",
    0x410: "EVTYPE_SINIT_PUBKEY_HASH",
    0x411: "EVTYPE_LCP_HASH",
    0x412: "EVTYPE_LCP_DETAILS_HASH",
    0x413: "EVTYPE_LCP_AUTHORITIES_HASH",
    0x414: "EVTYPE_NV_INFO_HASH",
    0x415: "EVTYPE_COLD_BOOT_BIOS_HASH",
    0x416: "EVTYPE_KM_HASH",
    0x417: "EVTYPE_BPM_HASH",
    0x418: "EVTYPE_KM_INFO_HASH",
    0x419: "EVTYPE_BPM_INFO_HASH",
    0x41A: "EVTYPE_BOOT_POL_HASH",
    0x4FE: "EVTYPE_RANDOM_VALUE",
    0x4FF: "EVTYPE_CAP_VALUE",
    # tboot and Linux Secure Launch [spec §4.4]
    0x501: "TB_MEASUREMENT",
    0x502: "SLAUNCH",
    SLAUNCH_START: "SLAUNCH_START",
    SLAUNCH_END: "SLAUNCH_END",
}

# Types whose digest is the hash of their event data (strings, separators, version), so a verifier can
# check one against the other; images, variables and EV_IPL (loaders disagree on what they hash) are
# not. Loaders hash a string with or without the NUL they log, so both forms are accepted.
DATA_DIGEST_TYPES = frozenset({0x4, 0x5, 0x8, 0x80000007})


def event_type_name(etype: int) -> str:
    return EVENT_TYPES.get(etype, f"0x{etype:x}")


# ---- declarations -------------------------------------------------------------------------------

TXT_CONTAINER_SIGNATURE = b"TXT Event Container\x00"
SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"

TcgPcrEvent = cs.Struct(  # TCG_PCR_EVENT: SHA-1 format record [SDG Table E-4]
    "pcr" / cs.Int32ul,
    "type" / cs.Int32ul,
    "digest" / cs.Bytes(20),
    "size" / cs.Rebuild(cs.Int32ul, cs.len_(cs.this.data)),
    "data" / cs.Bytes(cs.this.size),
)

TxtContainerHeader = cs.Struct(  # TPM 1.2 event container header, 48 bytes [SDG Table E-3]
    "signature" / cs.Const(TXT_CONTAINER_SIGNATURE),
    "reserved" / cs.Bytes(12),
    "container_ver_major" / cs.Int8ul,
    "container_ver_minor" / cs.Int8ul,
    "pcr_event_ver_major" / cs.Int8ul,
    "pcr_event_ver_minor" / cs.Int8ul,
    "container_size" / cs.Int32ul,
    "pcr_events_offset" / cs.Int32ul,
    "next_event_offset" / cs.Int32ul,
)

SpecIdEvent = cs.Struct(  # TCG_EfiSpecIDEventStruct, the crypto-agile header's data [spec §4.3]
    "signature" / cs.Const(SPEC_ID_SIGNATURE),
    "platform_class" / cs.Int32ul,
    "spec_version_minor" / cs.Int8ul,
    "spec_version_major" / cs.Int8ul,
    "spec_errata" / cs.Int8ul,
    "uintn_size" / cs.Int8ul,
    "number_of_algorithms" / cs.Rebuild(cs.Int32ul, cs.len_(cs.this.algorithms)),
    "algorithms" / cs.Array(cs.this.number_of_algorithms, cs.Struct("alg_id" / cs.Int16ul, "digest_size" / cs.Int16ul)),
    "vendor_info_size" / cs.Rebuild(cs.Int8ul, cs.len_(cs.this.vendor_info)),
    "vendor_info" / cs.Bytes(cs.this.vendor_info_size),
)


def event2_struct(sizes: Mapping[int, int]) -> cs.Struct:
    """TCG_PCR_EVENT2 for one log: each digest's size comes from that log's Spec ID table."""
    digest = cs.Struct(
        "alg" / cs.Int16ul, "digest" / cs.Switch(cs.this.alg, {a: cs.Bytes(n) for a, n in sizes.items()})
    )
    return cs.Struct(
        "pcr" / cs.Int32ul,
        "type" / cs.Int32ul,
        "count" / cs.Rebuild(cs.Int32ul, cs.len_(cs.this.digests)),
        "digests" / cs.Array(cs.this.count, digest),
        "size" / cs.Rebuild(cs.Int32ul, cs.len_(cs.this.data)),
        "data" / cs.Bytes(cs.this.size),
    )


# ---- data model ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    """One record; ``offset`` is its absolute address (physical address or file offset).

    Not frozen: a frozen dataclass builds each instance through object.__setattr__, which alone cost
    a fifth of parsing a 100,000-event log. Parsers create Events; nothing mutates them.
    """

    index: int
    offset: int
    pcr: int
    type: int
    digests: Mapping[str, bytes]
    data: bytes

    @property
    def type_name(self) -> str:
        return event_type_name(self.type)


@dataclass(frozen=True)
class EventLog:
    format: str  # tpm12-container | tcg-sha1 | crypto-agile
    algorithms: tuple[tuple[str, int], ...]
    events: tuple[Event, ...]
    end: int  # absolute offset just past the last record
    spec_id: dict[str, object] = field(default_factory=dict)
    container: dict[str, int] = field(default_factory=dict)

    @property
    def banks(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.algorithms)


# ---- parsing ------------------------------------------------------------------------------------

_U32x3 = struct.Struct("<III")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_SHA1_HEAD = struct.Struct("<II20sI")


def _truncated(structure: str, fld: str, at: int) -> FormatError:
    return FormatError(structure, "truncated: the record runs past the end of the log", field=fld, offset=at)


def _walk_sha1(data: bytes, start: int, limit: int, base: int, first_index: int = 0) -> tuple[list[Event], int]:
    """TCG_PCR_EVENT records back to back until ``limit`` or a zero record (zero-filled buffer)."""
    events: list[Event] = []
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
        events.append(
            Event(first_index + len(events), base + off, pcr, etype, {"sha1": digest}, data[off + 32 : off + 32 + size])
        )
        off += 32 + size
    return events, off


def _walk_agile(
    data: bytes, start: int, limit: int, base: int, sizes: Mapping[int, int], stop_at_zero: bool
) -> tuple[list[Event], int]:
    """TCG_PCR_EVENT2 records; the Linux ``__calc_tpm2_event_size`` rules, as typed errors."""
    names = {alg: ALGORITHMS.get(alg, (f"alg_0x{alg:04x}", 0))[0] for alg in sizes}
    events: list[Event] = []
    # The common record carries every Spec ID digest in Spec ID order: one unpack reads its whole head.
    order = list(sizes)
    full = struct.Struct("<III" + "".join(f"H{sizes[a]}s" for a in order) + "I")
    bank_names = [names[a] for a in order]
    nalg = len(order)
    off = start
    while off < limit:
        if off + full.size <= limit:
            head = full.unpack_from(data, off)
            if head[2] == nalg and list(head[3:-1:2]) == order:
                esize = head[-1]
                p = off + full.size
                if not (stop_at_zero and head[1] == 0 and esize == 0) and p + esize <= limit:
                    events.append(Event(len(events) + 1, base + off, head[0], head[1],
                                        dict(zip(bank_names, head[4:-1:2], strict=True)), data[p : p + esize]))
                    off = p + esize
                    continue
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
        digests: dict[str, bytes] = {}
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
            if names[alg] in digests:
                raise FormatError("TCG_PCR_EVENT2", f"two {names[alg]} digests", field="digests", offset=base + p)
            if p + 2 + size > limit:
                raise _truncated("TCG_PCR_EVENT2", "digests", base + off)
            digests[names[alg]] = data[p + 2 : p + 2 + size]
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
        events.append(Event(len(events) + 1, base + off, pcr, etype, digests, data[p : p + esize]))
        off = p + esize
    return events, off


def _parse_container(data: bytes, base: int) -> EventLog:
    hdr = parse_at(TxtContainerHeader, data, 0, "TXT event container", base)
    if not 48 <= hdr.pcr_events_offset <= hdr.next_event_offset <= hdr.container_size:
        raise FormatError(
            "TXT event container",
            "offsets violate 48 <= PCREventsOffset <= NextEventOffset <= "
            f"ContainerSize ({hdr.pcr_events_offset}, {hdr.next_event_offset}, {hdr.container_size})",
            field="next_event_offset",
            offset=base,
        )
    if hdr.next_event_offset > len(data):
        raise FormatError(
            "TXT event container",
            f"NextEventOffset {hdr.next_event_offset} is past the {len(data)}-byte buffer",
            field="next_event_offset",
            offset=base,
        )
    # Secure Launch walks from header + 48, not PCREventsOffset (v7-12, v14).
    events, end = _walk_sha1(data, 48, hdr.next_event_offset, base)
    container = {
        k: hdr[k]
        for k in (
            "container_size",
            "pcr_events_offset",
            "next_event_offset",
            "container_ver_major",
            "container_ver_minor",
        )
    }
    return EventLog("tpm12-container", (("sha1", 20),), tuple(events), base + end, container=container)


def _is_spec_id_header(data: bytes) -> bool:
    if len(data) < 32 + 16:
        return False
    pcr, etype, digest, _size = _SHA1_HEAD.unpack_from(data, 0)
    return pcr == 0 and etype == EV_NO_ACTION and not any(digest) and data[32:48] == SPEC_ID_SIGNATURE


def _parse_agile(data: bytes, base: int, end: int | None) -> EventLog:
    head = parse_at(TcgPcrEvent, data, 0, "crypto-agile header event", base)
    # Some writers leave vendorInfo outside EventSize (tpm2-tools specid-vendordata fixture): read the
    # Spec ID from the bytes that follow and let the records start after whichever ends later.
    spec = parse_at(SpecIdEvent, data, 32, "Spec ID event", base)
    spec_len = len(SpecIdEvent.build(spec))
    if not spec.algorithms:
        raise FormatError("Spec ID event", "numberOfAlgorithms is 0", field="number_of_algorithms", offset=base + 32)
    sizes = {a.alg_id: a.digest_size for a in spec.algorithms}
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
    start = 32 + max(head.size, spec_len)
    events, stop = _walk_agile(data, start, len(data) if end is None else end, base, sizes, end is None)
    header = Event(0, base, 0, EV_NO_ACTION, {"sha1": bytes(20)}, data[32:start])
    algorithms = tuple((ALGORITHMS.get(a, (f"alg_0x{a:04x}", 0))[0], n) for a, n in sizes.items())
    spec_id = {
        k: spec[k]
        for k in (
            "platform_class",
            "spec_version_major",
            "spec_version_minor",
            "spec_errata",
            "uintn_size",
            "vendor_info",
        )
    }
    return EventLog("crypto-agile", algorithms, (header, *events), base + stop, spec_id=spec_id)


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
    events, stop = _walk_sha1(data, 0, len(data) if end is None else min(end, len(data)), base)
    return EventLog("tcg-sha1", (("sha1", 20),), tuple(events), base + stop)


def parse_log_reference(data: bytes, *, base: int = 0) -> list[tuple[int, int, dict[str, bytes], bytes]]:
    """The same records through the construct declarations alone; the fast walk is tested against it."""
    fmt = detect_format(data)
    out: list[tuple[int, int, dict[str, bytes], bytes]] = []
    if fmt == "crypto-agile":
        head = parse_at(TcgPcrEvent, data, 0, "header", base)
        spec = parse_at(SpecIdEvent, head.data, 0, "Spec ID", base + 32)
        sizes = {a.alg_id: a.digest_size for a in spec.algorithms}
        rec = event2_struct(sizes)
        off = 32 + head.size
        out.append((0, EV_NO_ACTION, {"sha1": bytes(20)}, head.data))
        while off + 12 <= len(data) and any(data[off : off + 12]):
            ev = parse_at(rec, data, off, "TCG_PCR_EVENT2", base)
            out.append((ev.pcr, ev.type, {ALGORITHMS[d.alg][0]: d.digest for d in ev.digests}, ev.data))
            off += len(rec.build(ev))
        return out
    off = 48 if fmt == "tpm12-container" else 0
    limit = parse_at(TxtContainerHeader, data, 0, "container", base).next_event_offset if off else len(data)
    while off + 32 <= limit and any(data[off : off + 32]):
        ev = parse_at(TcgPcrEvent, data, off, "TCG_PCR_EVENT", base)
        out.append((ev.pcr, ev.type, {"sha1": ev.digest}, ev.data))
        off += 32 + ev.size
    return out


# ---- building (the simulator) -------------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    """A record to build: digests by bank name (a bank may be missing)."""

    pcr: int
    type: int
    digests: Mapping[str, bytes]
    data: bytes = b""


def _pad(blob: bytes, size: int | None, structure: str) -> bytes:
    if size is None:
        return blob
    if len(blob) > size:
        raise FormatError(structure, f"{len(blob)} bytes of records do not fit the {size}-byte buffer")
    return blob + bytes(size - len(blob))


def build_crypto_agile(
    banks: Sequence[str],
    events: Iterable[NewEvent],
    *,
    vendor_info: bytes = b"",
    platform_class: int = 1,
    spec_errata: int = 0,
    size: int | None = None,
) -> bytes:
    """Header record + TCG_PCR_EVENT2 records, zero-padded to ``size`` (the allocated buffer)."""
    algs = [{"alg_id": ALG_ID[b], "digest_size": DIGEST_SIZE[b]} for b in banks]
    spec = build(
        SpecIdEvent,
        {
            "platform_class": platform_class,
            "spec_version_minor": 0,
            "spec_version_major": 2,
            "spec_errata": spec_errata,
            "uintn_size": 2,
            "algorithms": algs,
            "vendor_info": vendor_info,
        },
        "Spec ID event",
    )
    out = [build(TcgPcrEvent, {"pcr": 0, "type": EV_NO_ACTION, "digest": bytes(20), "data": spec}, "header")]
    rec = event2_struct({a["alg_id"]: a["digest_size"] for a in algs})
    for ev in events:
        digests = [{"alg": ALG_ID[b], "digest": ev.digests[b]} for b in banks if b in ev.digests]
        out.append(build(rec, {"pcr": ev.pcr, "type": ev.type, "digests": digests, "data": ev.data}, "TCG_PCR_EVENT2"))
    return _pad(b"".join(out), size, "crypto-agile log")


def build_tcg_sha1(events: Iterable[NewEvent]) -> bytes:
    return b"".join(
        build(TcgPcrEvent, {"pcr": e.pcr, "type": e.type, "digest": e.digests["sha1"], "data": e.data}, "TCG_PCR_EVENT")
        for e in events
    )


def build_tpm12_container(events: Iterable[NewEvent], *, container_size: int) -> bytes:
    body = build_tcg_sha1(events)
    header = build(
        TxtContainerHeader,
        {
            "reserved": bytes(12),
            "container_ver_major": 1,
            "container_ver_minor": 0,
            "pcr_event_ver_major": 1,
            "pcr_event_ver_minor": 0,
            "container_size": container_size,
            "pcr_events_offset": 48,
            "next_event_offset": 48 + len(body),
        },
        "TXT event container",
    )
    return _pad(header + body, container_size, "TXT event container")


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
