"""What sld is pointed at is read only if it is what it should be: a regular file of bounded size, never
through a planted link, and an image that shrinks under a read is a typed error, not SIGBUS (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sld.discover import discover
from sld.errors import SourceError
from sld.platform.memory import ImageMemory
from sld.platform.securityfs import MAX_EVENTLOG
from sld.platform.source import open_source
from sld.sim.builder import build_platform

TXT_PUB = 0xFED30000


def sld(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sld.cli", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "phys.img"
    build_platform("clean").write_image(path)
    return path


def test_image_that_shrinks_between_open_and_read_is_a_typed_error(image: Path) -> None:
    with ImageMemory(str(image)) as mem:
        assert len(mem.read(TXT_PUB, 0x1000, "TXT config space")) == 0x1000
        os.truncate(image, TXT_PUB + 0x800)  # another process shrinks it under the open reader
        with pytest.raises(SourceError, match="shrank") as err:
            mem.read(TXT_PUB, 0x1000, "TXT config space")
    assert err.value.address == TXT_PUB


def test_discovery_of_an_image_cut_after_opening_records_a_source_error(image: Path) -> None:
    with open_source(f"image:{image}") as source:
        os.truncate(image, 0x7B000000)  # heap and everything above it gone after the size was taken
        snap = discover(source)
    assert isinstance(snap.errors["registers"], SourceError) and "shrank" in str(snap.errors["registers"])


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_image_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "img"
    if kind == "device":
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path)
    with pytest.raises(SourceError, match="not a regular file"):
        open_source(f"image:{path}")


@pytest.fixture
def securityfs(tmp_path: Path) -> Path:
    root = tmp_path / "slaunch"
    build_platform("clean").write_securityfs(root)
    return root


@pytest.mark.parametrize("plant", ["link-to-dev-zero", "fifo", "huge", "link-to-regular-file"])
def test_securityfs_eventlog_that_is_not_a_bounded_regular_file_is_refused(securityfs: Path, plant: str) -> None:
    log = securityfs / "eventlog"
    real = log.read_bytes()
    log.unlink()
    if plant == "link-to-dev-zero":
        log.symlink_to("/dev/zero")
    elif plant == "fifo":
        os.mkfifo(log)  # nobody ever writes: a blocking open or read would hang here
    elif plant == "huge":
        with open(log, "wb") as f:
            f.truncate(MAX_EVENTLOG + 1)
    else:
        (securityfs / "elsewhere").write_bytes(real)
        log.symlink_to(securityfs / "elsewhere")
    with open_source(f"securityfs:{securityfs}") as source:
        snap = discover(source)
    err = snap.errors["log"]
    assert isinstance(err, SourceError) and snap.log is None
    assert {"link-to-dev-zero": "symbolic link", "fifo": "FIFO", "huge": "more than",
            "link-to-regular-file": "symbolic link"}[plant] in str(err)
    run = sld("inspect", "log", "--source", f"securityfs:{securityfs}")
    assert run.returncode == 3 and "Traceback" not in run.stderr, run.stderr


def test_securityfs_register_file_linked_elsewhere_is_refused(securityfs: Path) -> None:
    sts = securityfs / "txt" / "sts"
    sts.unlink()
    sts.symlink_to("/dev/zero")
    with open_source(f"securityfs:{securityfs}") as source:
        snap = discover(source)
    assert isinstance(snap.errors["registers"], SourceError) and "symbolic link" in str(snap.errors["registers"])


@pytest.mark.parametrize("planted", ["PATH", "PATH.tmp", "PATH.json"])
def test_sim_build_replaces_planted_links_instead_of_writing_through_them(tmp_path: Path, planted: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "phys.img"
    Path(planted.replace("PATH", str(out))).symlink_to(victim)
    assert sld("sim", "build", "--scenario", "clean", "-o", str(out)).returncode == 0
    assert victim.read_text() == "precious\n"
    assert out.is_file() and not out.is_symlink() and os.stat(out).st_blocks * 512 < 4 << 20
