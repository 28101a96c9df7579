"""SLRT: every generation round-trips, is told apart by structure, and walks are bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sld.errors import FormatError
from sld.formats import slrt
from sld.formats._util import Region
from sld.sim.builder import SLRT_BASE, build_platform
from sld.sim.scenarios import LAYOUTS
from tests.roundtrip import assert_declaration_round_trip, assert_round_trip


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ["clean", "clean-tpm12", "slrt-no-log-info"])
def test_round_trip_and_generation_detection(name: str, layout: str) -> None:
    def rebuild(t: slrt.Slrt) -> bytes:
        return slrt.build_slrt(layout, [(e.name, e.fields) for e in t.entries], max_size=t.header["max_size"])

    table = assert_round_trip(slrt.parse_slrt, rebuild, build_platform(name, layout).slrt, SLRT_BASE)
    assert table.layout == layout and table.candidates == (layout,)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_entry_declarations_round_trip(layout: str) -> None:
    blob = build_platform("clean", layout).slrt
    table = slrt.parse_slrt(Region(blob, SLRT_BASE))
    for e in table.entries:
        raw = blob[e.offset - SLRT_BASE : e.offset - SLRT_BASE + e.size]
        assert_declaration_round_trip(slrt.entry_struct(layout, e.tag), raw, {"tag": e.tag, "size": e.size,
                                                                              "body": e.fields})


def test_entry_sizes_follow_the_spec_tables() -> None:
    assert {layout: {tag: slrt.fixed_size(layout, tag) for tag in slrt.FIXED_TAGS} for layout in LAYOUTS} == {
        "v7": {1: 44, 2: 20, 4: 540}, "v9": {1: 64, 2: 24, 4: 552}, "v10": {1: 72, 2: 24, 4: 552},
        "v12": {1: 72, 2: 24, 4: 560}, "v16": {1: 88, 2: 24, 4: 560}}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_log_info_and_policy_decode_in_every_generation(layout: str) -> None:
    table = slrt.parse_slrt(Region(build_platform("clean", layout).slrt, SLRT_BASE))
    assert table.log_info == slrt.LogInfo("tpm20", 0x7A010000, 0x10000)
    assert [slrt.evt_info_text(p["evt_info"]) for p in table.policy][0] == "Measured SLR Table"
    assert [p["entity"] for p in table.policy] == [0x7A100000 + 0x1000 * i for i in range(5)]
    assert [p["size"] for p in table.policy] == [0x1000] * 5


def test_missing_log_info_is_none() -> None:
    assert slrt.parse_slrt(Region(build_platform("slrt-no-log-info").slrt, SLRT_BASE)).log_info is None


def test_bad_magic() -> None:
    with pytest.raises(FormatError, match="MTRD") as err:
        slrt.parse_slrt(Region(build_platform("slrt-bad-magic").slrt, SLRT_BASE))
    assert err.value.offset == SLRT_BASE and err.value.field == "magic"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_entry_size_zero_is_an_error_not_a_loop(layout: str) -> None:
    blob = bytearray(build_platform("clean", layout).slrt)
    width = 2 if layout in ("v7", "v9") else 4
    blob[16 + width : 16 + 2 * width] = bytes(width)
    with pytest.raises(FormatError) as err:
        slrt.parse_slrt(Region(bytes(blob), SLRT_BASE))
    assert err.value.offset == SLRT_BASE + 16 and err.value.field == "size"


def test_size_past_max_size() -> None:
    blob = bytearray(build_platform("clean").slrt)
    blob[8:12] = (0x2000).to_bytes(4, "little")
    with pytest.raises(FormatError, match="max_size"):
        slrt.parse_slrt(Region(bytes(blob), SLRT_BASE))


SEEDS = [build_platform("clean", layout).slrt[:0x400] for layout in LAYOUTS]


@settings(max_examples=400, deadline=None)
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_mutated_tables_give_only_format_errors(seed: bytes, data: st.DataObject) -> None:
    blob = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 6))):
        blob[data.draw(st.integers(0, 0x3FF))] = data.draw(st.integers(0, 255))
    try:
        table = slrt.parse_slrt(Region(bytes(blob), SLRT_BASE))
    except FormatError as err:
        assert err.offset is None or SLRT_BASE <= err.offset < SLRT_BASE + len(blob)
        return
    for e in table.entries:
        assert SLRT_BASE + 16 <= e.offset and e.offset + e.size <= SLRT_BASE + table.header["size"]
