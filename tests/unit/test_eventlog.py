"""Event log formats: build -> parse -> build round trips, and malformed input gives FormatError only."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sld.errors import FormatError
from sld.formats.eventlog import parse_log
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
    log = parse_log(blob, base=0x7A010000)
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
        parse_log(blob[:-3], base=0x1000, end=len(blob) - 3)
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
    log = parse_log(blob, base=0x1000)
    assert [(e.pcr, e.type, dict(e.digests), e.data) for e in log.events] == parse_log_reference(blob)
    record = event2_struct({ALG_ID[b]: DIGEST_SIZE[b] for b in banks})
    for e in log.events[1:]:  # each offset (worked out from the heads) is where construct finds that record
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
    try:
        log = parse_log(bytes(blob[:cut]), base=0x10000)
    except FormatError as err:
        assert err.offset is None or 0x10000 <= err.offset <= 0x10000 + len(blob)
        return
    for ev in log.events:
        assert 0x10000 <= ev.offset < 0x10000 + cut
