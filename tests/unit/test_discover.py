"""Following pointers through a real mmap'd image: each scenario stops where its platform is broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from sld.discover import discover
from sld.errors import FormatError
from sld.formats import heap
from sld.formats._util import Region
from sld.formats.eventlog import parse_log
from sld.platform.image import write_image
from sld.platform.source import open_source
from sld.sim.builder import HEAP_BASE, build_platform
from sld.sim.scenarios import LAYOUTS

BROKEN = {"slrt-bad-magic": "slrt", "slrt-no-log-info": "log", "truncated-log": "log"}


def snapshot(tmp_path: Path, regions: dict[int, bytes]):
    image = tmp_path / "phys.img"
    write_image(image, regions)
    with open_source(f"image:{image}") as source:
        return discover(source)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ["clean", "clean-tpm12", "not-launched", *BROKEN])
def test_each_scenario_reaches_the_stage_it_should(tmp_path: Path, name: str, layout: str) -> None:
    platform = build_platform(name, layout)
    snap = snapshot(tmp_path, platform.regions())
    assert snap.registers is not None and snap.source_kind == "image"
    if name == "not-launched":
        assert snap.heap is None and not snap.errors
        return
    assert set(snap.errors) == ({BROKEN[name]} if name in BROKEN else set())
    if name in BROKEN:
        assert isinstance(snap.errors[BROKEN[name]], FormatError)
        return
    assert snap.slrt.layout == layout
    assert snap.os_mle_layout == heap.OS_MLE_LAYOUT_OF[layout]
    assert snap.log.events == parse_log(Region(platform.log, snap.slrt.log_info.addr)).events


def test_slrt_pointer_past_the_image_is_a_typed_error(tmp_path: Path) -> None:
    platform = build_platform("clean")
    h = heap.parse_heap(Region(platform.heap, HEAP_BASE))
    os_mle = h.os_mle_data
    blob = bytearray(platform.heap)
    rel = os_mle.data_address - HEAP_BASE
    blob[rel + 8 : rel + 16] = (0xFFFF_FFFF_0000).to_bytes(8, "little")
    regions = platform.regions()
    regions[HEAP_BASE] = bytes(blob)
    snap = snapshot(tmp_path, regions)
    err = snap.errors["slrt"]
    assert isinstance(err, FormatError) and err.offset == os_mle.data_address and "0xffffffff0000" in str(err)


def test_log_pointer_disagreeing_with_log_info_is_refused(tmp_path: Path) -> None:
    platform = build_platform("clean")
    h = heap.parse_heap(Region(platform.heap, HEAP_BASE))
    el = h.os_sinit_data.element(heap.ELEMENT_LOG_PTR2_1)
    blob = bytearray(platform.heap)
    rel = el.offset - HEAP_BASE + 8
    blob[rel : rel + 8] = (0x7A020000).to_bytes(8, "little")
    regions = platform.regions()
    regions[HEAP_BASE] = bytes(blob)
    snap = snapshot(tmp_path, regions)
    assert "kernel assumes they are equal" in str(snap.errors["log"]) and snap.log is None
