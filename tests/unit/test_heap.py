"""TXT heap: every simulated heap round-trips byte for byte, and bad bytes give only FormatErrors."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sld.errors import FormatError
from sld.formats import heap
from sld.formats._util import Region, build
from sld.sim.builder import HEAP_BASE, HEAP_SIZE, build_platform
from sld.sim.scenarios import LAYOUTS
from tests.roundtrip import assert_declaration_round_trip, assert_round_trip

SCENARIOS = ("clean", "clean-tpm12", "clean-sha384")


def rebuild(h: heap.Heap, os_mle_layout: str) -> bytes:
    tables = []
    for t in h.tables:
        if t.name == "OsMleData":
            fields = {c.layout: c.fields for c in heap.os_mle_candidates(t)}[os_mle_layout]
            tables.append(heap.build_os_mle(os_mle_layout, fields))
            continue
        elements = [(e.type, e.data) for e in t.elements if e.type != heap.ELEMENT_END]
        tail = heap.build_mdrs(t.mdrs) if t.mdrs else b""
        tables.append(heap.build_table(t.name, t.fields, elements, tail))
    return heap.build_heap(tables, h.size)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", SCENARIOS)
def test_build_parse_build_is_byte_identical(name: str, layout: str) -> None:
    assert_round_trip(heap.parse_heap, lambda h: rebuild(h, heap.OS_MLE_LAYOUT_OF[layout]),
                      build_platform(name, layout).heap, HEAP_BASE)


@pytest.mark.parametrize("name", ["BiosData", "OsSinitData", "SinitMleData"])
def test_table_declarations_round_trip(name: str) -> None:
    h = heap.parse_heap(Region(build_platform("clean").heap, HEAP_BASE))
    decl, _ = heap.TABLE_DECLS[name]
    fields = h.table(name).fields
    assert_declaration_round_trip(decl, build(decl, fields, name), fields)


@pytest.mark.parametrize("etype", sorted(heap.ELEMENT_DATA))
def test_element_payload_declarations_round_trip(etype: int) -> None:
    elements = [e for t in heap.parse_heap(Region(build_platform("clean").heap, HEAP_BASE)).tables
                for e in t.elements if e.type == etype]
    samples = {1: {"major": 2, "minor": 0, "revision": 0}, 2: {"num_acms": 2, "acm_addrs": [0xFFE00000, 0x1000]},
               5: {"address": 0x7A010000},
               7: {"count": 1, "logs": [{"hash_alg": 0xB, "reserved": 0, "address": 0x7A010000,
                                          "allocated_size": 0x10000, "first_record_offset": 0,
                                          "next_record_offset": 0x200}]},
               8: {"address": 0x7A010000, "allocated_size": 0x10000, "first_record_offset": 0,
                   "next_record_offset": 0x200}}
    for fields in [*(e.fields for e in elements), samples[etype]]:
        decl = heap.ELEMENT_DATA[etype]
        assert_declaration_round_trip(decl, build(decl, fields, "element"), fields)


@pytest.mark.parametrize("layout", sorted(heap.OS_MLE_LAYOUTS))
def test_os_mle_declarations_round_trip(layout: str) -> None:
    fields = {"version": 1, "boot_params_addr": 0x8C000, "reserved": 0, "slrt": 0x7A000000, "txt_info": 0x7A000400,
              "ap_wake_block": 0x9D000, "ap_wake_block_size": 0x4000, "mle_scratch": bytes(64)}
    decl = heap.OS_MLE_LAYOUTS[layout]
    fields = {c.name: fields[c.name] for c in decl.subcons}
    assert_declaration_round_trip(decl, heap.build_os_mle(layout, fields), fields)


def test_tables_chain_and_decode() -> None:
    h = heap.parse_heap(Region(build_platform("clean").heap, HEAP_BASE))
    assert [t.name for t in h.tables] == list(heap.TABLES)
    assert h.tables[1].address == h.tables[0].address + h.tables[0].size
    assert h.bios_data.fields["version"] == 6 and h.bios_data.fields["mle_flags"] == 0x4
    assert h.bios_data.element(2).fields == {"num_acms": 1, "acm_addrs": [0xFFE00000]}
    assert h.os_sinit_data.fields["capabilities"] & (1 << 9)  # crypto-agile log (SDG Table 2-2)
    pointer = heap.event_log_pointer(h.os_sinit_data)
    assert pointer is not None and pointer["type"] == "EVENT_LOG_POINTER2_1" and pointer["first_record_offset"] == 0
    assert [m["length"] for m in h.sinit_mle_data.mdrs] == [0x7A000000, 0x80000000]
    assert h.sinit_mle_data.fields["version"] == 9


def test_tpm12_heap_points_at_a_container() -> None:
    h = heap.parse_heap(Region(build_platform("clean-tpm12").heap, HEAP_BASE))
    assert h.os_sinit_data.fields["version"] == 6
    assert heap.event_log_pointer(h.os_sinit_data)["type"] == "TPM_EVENT_LOG_PTR"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_os_mle_shapes_are_candidates(layout: str) -> None:
    h = heap.parse_heap(Region(build_platform("clean", layout).heap, HEAP_BASE))
    shapes = {c.layout: c.fields for c in heap.os_mle_candidates(h.os_mle_data)}
    assert shapes[heap.OS_MLE_LAYOUT_OF[layout]]["slrt"] == 0x7A000000


def _size_at(blob: bytearray, pos: int, value: int) -> bytes:
    blob[pos : pos + 8] = value.to_bytes(8, "little")
    return bytes(blob)


@pytest.mark.parametrize("value", [0, 7, HEAP_SIZE + 8, 2**64 - 1])
def test_bad_record_size_names_the_table_and_address(value: int) -> None:
    blob = bytearray(build_platform("clean").heap)
    first = int.from_bytes(blob[:8], "little")
    with pytest.raises(FormatError) as err:
        heap.parse_heap(Region(_size_at(blob, first, value), HEAP_BASE))
    assert err.value.field == "OsMleData.size" and err.value.offset == HEAP_BASE + first


def test_element_with_size_zero_is_an_error_not_a_loop() -> None:
    h = heap.parse_heap(Region(build_platform("clean").heap, HEAP_BASE))
    el = h.bios_data.element(1)
    blob = bytearray(build_platform("clean").heap)
    rel = el.offset - HEAP_BASE
    blob[rel + 4 : rel + 8] = (0).to_bytes(4, "little")
    with pytest.raises(FormatError) as err:
        heap.parse_heap(Region(bytes(blob), HEAP_BASE))
    assert err.value.offset == el.offset and err.value.field == "size"


SEED = build_platform("clean").heap[:0x400]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_heaps_give_only_format_errors(data: st.DataObject) -> None:
    blob = bytearray(SEED)
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, 0x200))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        h = heap.parse_heap(Region(bytes(blob[:cut]), HEAP_BASE))
    except FormatError as err:
        assert err.offset is None or HEAP_BASE <= err.offset <= HEAP_BASE + cut
        return
    assert sum(t.size for t in h.tables) <= cut


def test_region_slices_keep_their_address() -> None:
    r = Region(bytes(range(64)), 0x7B000000)
    inner = r[8:40][4:]
    assert (inner.base, len(inner), inner[0], inner.uint(0, 2), bytes(inner[:2])) == (0x7B00000C, 28, 12, 0x0D0C,
                                                                                      b"\x0c\x0d")
    with pytest.raises(FormatError) as err:
        inner.parse(heap.ElementHeader, "probe", 24)
    assert err.value.offset == 0x7B00000C + 24 and "truncated" in str(err.value)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_os_mle_shape_is_the_slrt_generations(layout: str) -> None:
    h = heap.parse_heap(Region(build_platform("clean", layout).heap, HEAP_BASE))
    chosen = heap.os_mle_for(heap.os_mle_candidates(h.os_mle_data), 0x7A000000, layout)
    assert chosen.layout == heap.OS_MLE_LAYOUT_OF[layout] and chosen.fields["slrt"] == 0x7A000000


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(min_size=8, max_size=8))
def test_element_header_fast_path_equals_the_declaration(raw: bytes) -> None:
    declared = heap.ElementHeader.parse(raw)
    assert Region(raw).unpack(heap.ELEMENT_HEADER, 0) == (declared.type, declared.size)
    assert heap.ElementHeader.sizeof() == 8


def test_elements_are_a_sequence_made_on_access() -> None:
    h = heap.parse_heap(Region(build_platform("clean").heap, HEAP_BASE))
    elements = h.bios_data.elements
    made = tuple(elements)
    assert len(elements) == len(made) == 3 and elements[-1] == made[-1] and elements[1:] == made[1:]
    assert elements == made and [e.name for e in elements] == ["BIOS_SPEC_VER", "ACM", "END"]
    assert h.bios_data.element(2) == made[1] and h.bios_data.element(7) is None
    assert made[1].offset == h.bios_data.data_address + 36 + len(made[0].data) + 8


def test_the_element_walk_is_linear_in_the_heap_size() -> None:
    """Issue 17: ``parse_at`` once copied ``data[offset:]`` per element, so a 1 MiB BiosData of 8-byte
    elements took 9.6 s (quadratic: 2 MiB ~40 s). Each element is now read from its own bounded slice
    (benchmarks/heap_walk.py times the 16 MiB bound with the installed command)."""
    clean = heap.parse_heap(Region(build_platform("clean").heap, HEAP_BASE))
    kept = [(e.type, e.data) for e in clean.bios_data.elements if e.type != heap.ELEMENT_END]
    end = heap.build_elements([], "BiosData")  # END alone
    filler = heap.build_elements([(4, b"")], "BiosData").removesuffix(end)  # CUSTOM without payload: 8 bytes
    fillers = (2 << 20) // len(filler)
    bios = heap.build_table("BiosData", clean.bios_data.fields, kept).removesuffix(end) + filler * fillers + end
    tables = [bios, clean.os_mle_data.data, clean.os_sinit_data.data, clean.sinit_mle_data.data]
    blob = heap.build_heap(tables, len(bios) + (4 << 20))
    started = time.perf_counter()
    elements = heap.parse_heap(Region(blob, HEAP_BASE)).bios_data.elements
    assert len(elements) == len(kept) + fillers + 1 and sum(1 for _ in elements) == len(elements)
    assert elements[-1].name == "END" and elements[-2].type == 4
    assert time.perf_counter() - started < 10  # linear here: about a second on a loaded 2-core machine
