"""TXT heap: every simulated heap round-trips byte for byte, and bad bytes give only FormatErrors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sld.errors import FormatError
from sld.formats import heap
from sld.formats._util import Region
from sld.sim.builder import HEAP_BASE, HEAP_SIZE, build_platform
from sld.sim.scenarios import LAYOUTS

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
    blob = build_platform(name, layout).heap
    h = heap.parse_heap(Region(blob, HEAP_BASE))
    assert rebuild(h, heap.OS_MLE_LAYOUT_OF[layout]) == blob


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
