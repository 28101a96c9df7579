"""The mmap path that reads /dev/mem, exercised on a sparse image (file offset == physical address)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sld.errors import ConfigError, FormatError, SourceError
from sld.formats.registers import SECURITYFS_REGISTER, SECURITYFS_WIDTH
from sld.platform.memory import ImageMemory, MappedMemory
from sld.platform.securityfs import SECURITYFS_REGISTERS
from sld.platform.source import open_source

TXT_PUB = 0xFED30000


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "phys.img"
    with open(path, "wb") as f:
        f.truncate(TXT_PUB + 0x10000)
        f.seek(TXT_PUB + 0xFFE)  # straddles a page boundary on purpose
        f.write(b"\x11\x22\x33\x44")
    return path


def test_reads_bytes_at_physical_address_across_a_page_boundary(image: Path) -> None:
    with ImageMemory(str(image)) as mem:
        assert mem.read(TXT_PUB + 0xFFE, 4, "probe") == b"\x11\x22\x33\x44"
        assert mem.read(TXT_PUB, 2, "probe") == b"\0\0"


def test_image_is_sparse(image: Path) -> None:
    assert os.stat(image).st_blocks * 512 < 1 << 20


def test_read_past_the_end_names_structure_and_address(image: Path) -> None:
    with ImageMemory(str(image)) as mem, pytest.raises(FormatError) as err:
        mem.read(TXT_PUB + 0xFFF0, 0x20, "SLRT header")
    assert "SLRT header" in str(err.value)
    assert f"0x{TXT_PUB + 0xFFF0:x}" in str(err.value)


@pytest.mark.parametrize("addr,size", [(-1, 4), (0x1000, -1), (0x1000, 1 << 40)])
def test_implausible_reads_are_format_errors(image: Path, addr: int, size: int) -> None:
    with ImageMemory(str(image)) as mem, pytest.raises(FormatError):
        mem.read(addr, size, "heap")


def test_missing_image_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        open_source(f"image:{tmp_path / 'nope.img'}")
    assert err.value.exit_code == 3


def test_unknown_source_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        open_source("floppy")


@pytest.mark.skipif(os.path.exists("/dev/mem"), reason="only meaningful where /dev/mem is absent")
def test_devmem_absent_is_a_source_error() -> None:
    with pytest.raises(SourceError):
        open_source("devmem")


def test_the_devmem_mmap_path_reads_what_the_image_path_reads(image: Path) -> None:
    """MappedMemory (how /dev/mem is read) over the same file: page-aligned windows, same bytes."""
    with MappedMemory(str(image)) as mapped, ImageMemory(str(image)) as pread:
        for addr, size in ((TXT_PUB + 0xFFE, 4), (TXT_PUB, 2), (TXT_PUB + 0x123, 0x2000)):
            assert mapped.read(addr, size, "probe") == pread.read(addr, size, "probe")


def test_securityfs_files_read_are_the_ones_formats_decode() -> None:
    assert set(SECURITYFS_REGISTERS) == set(SECURITYFS_REGISTER) == set(SECURITYFS_WIDTH)
