"""TCG event-log records declared with construct: what the simulator builds logs with, and the
reference head readers the walk of :mod:`sld.formats.eventlog` is run with in the tests, to hold its
struct readers to these declarations (that module stays free of construct so that reading a log does
not pay for importing it). [SDG Tables E-3/E-4; TCG PC Client PFP §10.2.2; spec §4.3]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import construct as cs

from sld.errors import FormatError
from sld.formats._util import Region, build, region
from sld.formats.eventlog import Event, Head, HeadReader, log_start
from sld.formats.names import (
    ALG_ID,
    DIGEST_SIZE,
    EV_NO_ACTION,
    SPEC_ID_SIGNATURE,
    TXT_CONTAINER_SIGNATURE,
)
from sld.records import Record
from sld.vocab import LogFormat

_TCG_PCR_EVENT_HEAD = (
    "pcr" / cs.Int32ul,
    "type" / cs.Int32ul,
    "digest" / cs.Bytes(20),
)
TcgPcrEvent = cs.Struct(  # TCG_PCR_EVENT: SHA-1 format record [SDG Table E-4]
    *_TCG_PCR_EVENT_HEAD,
    "size" / cs.Rebuild(cs.Int32ul, cs.len_(cs.this.data)),
    "data" / cs.Bytes(cs.this.size),
)
TcgPcrEventHead = cs.Struct(*_TCG_PCR_EVENT_HEAD, "size" / cs.Int32ul)  # the record up to its event data

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


def _event2_digests(sizes: Mapping[int, int]) -> tuple[cs.Construct, ...]:
    """TCG_PCR_EVENT2 up to its digests, for one log: each digest's size comes from that log's Spec ID
    table (an algorithm the table does not list is an error: its size is unknown)."""
    digest = cs.Struct(
        "alg" / cs.Int16ul,
        "digest" / cs.Switch(cs.this.alg, {a: cs.Bytes(n) for a, n in sizes.items()}, default=cs.Error),
    )
    return (
        "pcr" / cs.Int32ul,
        "type" / cs.Int32ul,
        "count" / cs.Rebuild(cs.Int32ul, cs.len_(cs.this.digests)),
        "digests" / cs.Array(cs.this.count, digest),
    )


def event2_struct(sizes: Mapping[int, int]) -> cs.Struct:
    """TCG_PCR_EVENT2: the digests, then ``size`` bytes of event data."""
    return cs.Struct(*_event2_digests(sizes), "size" / cs.Rebuild(cs.Int32ul, cs.len_(cs.this.data)),
                     "data" / cs.Bytes(cs.this.size))


def event2_head(sizes: Mapping[int, int]) -> cs.Struct:
    """TCG_PCR_EVENT2 up to its event data."""
    return cs.Struct(*_event2_digests(sizes), "size" / cs.Int32ul)


def _head_reader(head: cs.Struct, digests: Callable[[cs.Container], object]) -> HeadReader:
    """A head reader for the walk from a construct declaration (the reference the struct readers meet)."""

    def read(data: bytes, off: int, limit: int) -> Head | None:
        try:
            rec = head.parse(data[off:limit])
        except cs.StreamError:
            return None  # the head runs past the bytes there are
        except cs.ExplicitError:
            raise FormatError("TCG_PCR_EVENT2", "a digest algorithm not in the Spec ID event",
                              field="digests.alg") from None
        return rec.pcr, rec.type, digests(rec), len(head.build(rec)), rec.size  # type: ignore[return-value]

    return read


def parse_log_reference(log: Region | bytes, *, end: int | None = None) -> list[Event]:
    """The records of a whole log as the construct declarations read them, walked by the one walk."""
    log = region(log)
    start = log_start(log, len(log), end)
    walk = start.walk
    walk.common = None  # every record through the declarations
    if start.header.format == LogFormat.CRYPTO_AGILE:
        walk.read_head = _head_reader(event2_head(walk.sizes), lambda rec: [(d.alg, d.digest) for d in rec.digests])
    else:
        walk.read_head = _head_reader(TcgPcrEventHead, lambda rec: {"sha1": rec.digest})
    return [*start.header.leading, *walk.records(log, start.start, start.limit)]


# ---- building (the simulator) -------------------------------------------------------------------


class NewEvent(Record):
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
    """TCG_PCR_EVENT records back to back (a TCG SHA-1 log, or a container's body) [SDG Table E-4]."""
    return b"".join(
        build(TcgPcrEvent, {"pcr": e.pcr, "type": e.type, "digest": e.digests["sha1"], "data": e.data}, "TCG_PCR_EVENT")
        for e in events
    )


def build_tpm12_container(events: Iterable[NewEvent], *, container_size: int) -> bytes:
    """The TPM 1.2 TXT event container: header, records, zero fill to ``container_size`` [SDG Table E-3]."""
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
