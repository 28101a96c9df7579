"""TCG event-log records declared with construct: what the simulator builds logs with, and the
reference the struct-based parser in :mod:`sld.formats.eventlog` is tested against byte for byte
(that parser stays free of construct so that reading a log does not pay for importing it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import construct as cs

from sld.errors import FormatError
from sld.formats._util import build, parse_at
from sld.formats.eventlog import detect_format
from sld.formats.names import (
    ALG_ID,
    ALGORITHMS,
    DIGEST_SIZE,
    EV_NO_ACTION,
    SPEC_ID_SIGNATURE,
    TXT_CONTAINER_SIGNATURE,
)

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
