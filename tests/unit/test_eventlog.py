"""Event log formats: build -> parse -> build round trips, and malformed input gives FormatError only."""

from __future__ import annotations

import hashlib
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sld.errors import FormatError
from sld.formats._util import Region
from sld.formats.eventlog import MAX_EVENTS, parse_log, stream_log
from sld.formats.names import ALG_ID, DIGEST_SIZE
from sld.formats.tcg import (
    NewEvent,
    SpecIdEvent,
    TxtContainerHeader,
    build_crypto_agile,
    build_tcg_sha1,
    build_tpm12_container,
    event2_struct,
    parse_log_reference,
)
from sld.replay import prefix_states, replay


def _events(banks: tuple[str, ...], n: int = 6) -> list[NewEvent]:
    out = []
    for i in range(n):
        data = b"event-%d" % i
        digests = {b: hashlib.new(b, data).digest() for b in banks}
        if i == 3 and len(banks) > 1:
            digests.pop(banks[-1])  # an event lacking a bank
        out.append(NewEvent(17 + i % 2, 0x502, digests, data))
    return out


def _rebuild(log_bytes: bytes, banks: tuple[str, ...]) -> bytes:
    log = parse_log(log_bytes)
    events = [NewEvent(e.pcr, e.type, e.digests, e.data) for e in log.events[1:]]
    return build_crypto_agile(banks, events, vendor_info=log.spec_id["vendor_info"], size=len(log_bytes))


@pytest.mark.parametrize("banks", [("sha1",), ("sha1", "sha256"), ("sha1", "sha256", "sha384", "sha512")])
def test_crypto_agile_round_trip(banks: tuple[str, ...]) -> None:
    blob = build_crypto_agile(banks, _events(banks), vendor_info=b"\x01\x02", size=4096)
    assert len(blob) == 4096
    assert _rebuild(blob, banks) == blob
    log = parse_log(blob)
    assert log.banks == banks and len(log.events) == 7
    if len(banks) > 1:
        assert banks[-1] not in log.events[4].digests
        assert (4, banks[-1]) in replay(log).missing


def test_tpm12_container_round_trip_and_walk_stops_at_next_event_offset() -> None:
    events = _events(("sha1",))
    blob = build_tpm12_container(events, container_size=2048)
    log = parse_log(Region(blob, 0x7A010000))
    assert log.format == "tpm12-container"
    assert [e.data for e in log.events] == [e.data for e in events]
    assert log.events[0].offset == 0x7A010000 + 48
    assert build_tpm12_container([NewEvent(e.pcr, e.type, e.digests, e.data) for e in log.events],
                                 container_size=2048) == blob


def test_tcg_sha1_round_trip() -> None:
    blob = build_tcg_sha1(_events(("sha1",)))
    log = parse_log(blob)
    assert log.format == "tcg-sha1"
    assert build_tcg_sha1([NewEvent(e.pcr, e.type, e.digests, e.data) for e in log.events]) == blob


def test_next_record_offset_bounds_the_walk() -> None:
    banks = ("sha1", "sha256")
    full = build_crypto_agile(banks, _events(banks))
    three = build_crypto_agile(banks, _events(banks)[:3])
    log = parse_log(full + bytes(100), end=len(three))
    assert len(log.events) == 4
    with pytest.raises(FormatError, match="NextRecordOffset"):
        parse_log(full, end=len(full) + 1)


def test_truncated_record_names_structure_and_offset() -> None:
    blob = build_crypto_agile(("sha256",), _events(("sha256",)))
    with pytest.raises(FormatError) as err:
        parse_log(Region(blob[:-3], 0x1000), end=len(blob) - 3)
    assert "TCG_PCR_EVENT2" in str(err.value) and "at 0x" in str(err.value)


def test_prefix_states_end_at_the_replayed_value() -> None:
    banks = ("sha1", "sha256")
    log = parse_log(build_crypto_agile(banks, _events(banks)))
    states = prefix_states(log, "sha256", 17)
    assert states[0] == bytes(32)
    assert states[-1] == replay(log).values["sha256"][17]
    assert len(states) == 1 + len(replay(log).events_by_pcr[17])


def test_fast_walk_equals_construct_declarations() -> None:
    banks = ("sha1", "sha256", "sha384")
    blob = build_crypto_agile(banks, _events(banks, 40))
    log = parse_log(Region(blob, 0x1000))
    assert list(log.events) == parse_log_reference(Region(blob, 0x1000))
    record = event2_struct({ALG_ID[b]: DIGEST_SIZE[b] for b in banks})
    for e in log.events[1:]:  # each offset is where construct finds that record
        assert record.parse(blob[e.offset - 0x1000 :]).data == e.data


@pytest.mark.parametrize("vendor_info", [b"", b"\x01", bytes(range(200))])
def test_struct_headers_equal_construct_declarations(vendor_info: bytes) -> None:
    banks = ("sha1", "sha256", "sha512")
    agile = build_crypto_agile(banks, _events(banks, 3), vendor_info=vendor_info, platform_class=0, spec_errata=2)
    spec = SpecIdEvent.parse(agile[32:])
    log = parse_log(agile)
    assert log.spec_id == {k: spec[k] for k in log.spec_id}
    assert log.algorithms == tuple((b, a.digest_size) for b, a in zip(banks, spec.algorithms, strict=True))
    assert log.events[0].data == agile[32 : 32 + len(SpecIdEvent.build(spec))]
    container = build_tpm12_container(_events(("sha1",)), container_size=1024)
    hdr = TxtContainerHeader.parse(container)
    assert parse_log(container).container == {k: hdr[k] for k in parse_log(container).container}


SEEDS = [
    build_crypto_agile(("sha1", "sha256"), _events(("sha1", "sha256"))),
    build_tpm12_container(_events(("sha1",)), container_size=600),
    build_tcg_sha1(_events(("sha1",))),
]


@settings(max_examples=300, deadline=None)
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_mutated_logs_give_only_format_errors(seed: bytes, data: st.DataObject) -> None:
    blob = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    end = data.draw(st.one_of(st.none(), st.integers(0, cut)))
    blob = bytes(blob[:cut])
    try:
        log = parse_log(Region(blob, 0x10000), end=end)
    except FormatError as err:
        assert err.offset is None or 0x10000 <= err.offset <= 0x10000 + len(blob)
        with pytest.raises(FormatError):  # the construct declarations refuse it too
            parse_log_reference(Region(blob, 0x10000), end=end)
        return
    for ev in log.events:
        assert 0x10000 <= ev.offset < 0x10000 + cut
    assert list(log.events) == parse_log_reference(Region(blob, 0x10000), end=end)
    if end is None:
        chunk = data.draw(st.integers(1, 64))
        _, streamed = stream_log((blob[i : i + chunk] for i in range(0, len(blob), chunk)), len(blob))
        assert tuple(streamed) == parse_log(blob).events  # a file's offsets


def test_spec_id_listing_an_algorithm_twice_is_a_format_error() -> None:
    blob = bytearray(build_crypto_agile(("sha1", "sha256"), _events(("sha1", "sha256"))))
    at = 32 + 16 + 4 + 4 + 4  # the Spec ID algorithms: after signature, platformClass, versions, count
    blob[at + 4 : at + 8] = blob[at : at + 4]  # sha256 -> a second sha1
    with pytest.raises(FormatError, match="listed twice") as err:
        parse_log(bytes(blob))
    assert err.value.structure == "Spec ID event" and err.value.field == "algorithms"


def test_a_record_with_no_digests_is_a_format_error() -> None:
    banks = ("sha1", "sha256")
    events = _events(banks)
    events[2] = NewEvent(17, 0x502, {}, b"nothing measured")
    blob = build_crypto_agile(banks, events)
    with pytest.raises(FormatError, match="no digest") as err:
        parse_log(Region(blob, 0x1000))
    assert err.value.field == "count" and err.value.offset == parse_log(build_crypto_agile(banks, events[:2]))\
        .end + 0x1000


def test_sha1_records_after_a_crypto_agile_header_are_a_format_error() -> None:
    agile = build_crypto_agile(("sha1",), [])
    blob = agile + build_tcg_sha1(_events(("sha1",)))
    with pytest.raises(FormatError, match="SHA-1 format"):
        parse_log(blob)
    zeros = agile + bytes(64)  # a header and the zero-filled buffer: an empty log, not SHA-1 records
    assert len(parse_log(zeros).events) == 1


def test_a_log_padded_with_digestless_records_is_refused_at_the_first() -> None:
    """16 MiB of 16-byte records with no digests once cost the daemon 0.5 GB and 5 s per verification."""
    blob = build_crypto_agile(("sha1", "sha256"), _events(("sha1", "sha256"), 3))
    padding = struct.pack("<IIII", 17, 0x502, 0, 0) * ((16 << 20) // 16)
    started = time.perf_counter()
    with pytest.raises(FormatError, match="no digest"):
        parse_log(blob + padding)
    assert time.perf_counter() - started < 1


def test_a_log_of_more_records_than_any_launch_writes_is_refused_whole_but_streams() -> None:
    record = struct.pack("<IIIH20sI", 17, 0x502, 1, ALG_ID["sha1"], bytes(20), 0)
    blob = build_crypto_agile(("sha1",), []) + record * (MAX_EVENTS + 1)
    with pytest.raises(FormatError, match=f"more than {MAX_EVENTS} records"):
        parse_log(blob)
    _, events = stream_log([blob], len(blob))
    assert sum(1 for _ in events) == MAX_EVENTS + 2


@pytest.mark.parametrize("chunk", [1, 7, 79, 4096, 65536])
def test_a_log_streamed_in_chunks_is_the_log_parsed_whole(chunk: int) -> None:
    """Larger than the first read (the header's), so records end inside chunks and exactly at their ends."""
    banks = ("sha1", "sha256", "sha384", "sha512")
    blob = build_crypto_agile(banks, _events(banks, 900))
    assert len(blob) > 2 * 65536
    header, events = stream_log((blob[i : i + chunk] for i in range(0, len(blob), chunk)), len(blob))
    assert tuple(events) == parse_log(blob).events
    assert header.banks == banks
    _, events = stream_log([blob[:100_000]], 100_000)  # a file that shrank (or was cut) under the reader
    with pytest.raises(FormatError, match="truncated"):
        list(events)
