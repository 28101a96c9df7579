"""``sld capture``: one small file holding everything sld read, which ``--source`` reads back as the machine
showed it, from every source kind; written afresh, never through planted links; hostile files refused."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sld.discover import Snapshot, discover
from sld.errors import SourceError
from sld.platform.capture import Capture, read_capture, write_capture
from sld.platform.source import open_source
from sld.sim.builder import build_platform


def sld(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sld.cli", *args], capture_output=True, text=True, timeout=60)


def snapshot(spec: str) -> Snapshot:
    with open_source(spec) as source:
        return discover(source)


def same_platform(a: Snapshot, b: Snapshot) -> None:
    assert a.registers == b.registers and a.heap == b.heap and a.slrt == b.slrt and a.os_mle == b.os_mle
    assert a.log is not None and b.log is not None and a.log.events == b.log.events
    assert {k: str(v) for k, v in a.errors.items()} == {k: str(v) for k, v in b.errors.items()}


def capture(tmp_path: Path, source: str) -> Path:
    out = tmp_path / "report.sldcap"
    run = sld("capture", "--source", source, "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert f"--source capture:{out}" in run.stdout
    return out


@pytest.mark.parametrize("layout", ["v7", "v12", "v16"])
def test_image_capture_reads_back_as_the_image(tmp_path: Path, layout: str) -> None:
    image = tmp_path / "phys.img"
    build_platform("clean", layout).write_image(image)
    out = capture(tmp_path, f"image:{image}")
    assert out.stat().st_size < 16 << 10 < os.stat(image).st_size  # KiBs, from a 4 GiB apparent image
    original = snapshot(f"image:{image}")
    replayed = snapshot(f"capture:{out}")
    same_platform(original, replayed)
    assert replayed.source_kind == "capture" and replayed.source_name == f"capture:{out}"
    same_platform(original, snapshot(f"image:{out}"))  # image: recognises a capture
    heap = json.loads(sld("inspect", "heap", "--json", "--source", f"capture:{out}").stdout)
    assert heap["tables"][1]["fields"]["layout"] == original.os_mle_layout


def test_securityfs_capture_reads_back_as_securityfs(tmp_path: Path) -> None:
    root = tmp_path / "slaunch"
    build_platform("clean").write_securityfs(root)
    out = capture(tmp_path, f"securityfs:{root}")
    original, replayed = snapshot(f"securityfs:{root}"), snapshot(f"capture:{out}")
    assert replayed.registers == original.registers and replayed.log.events == original.log.events
    assert replayed.source_kind == "securityfs" and replayed.heap is None and not replayed.errors
    cap = read_capture(str(out))
    assert cap.securityfs["eventlog"] == (root / "eventlog").read_bytes() and not cap.regions
    assert cap.meta["source"] == f"securityfs:{root}" and cap.meta["kind"] == "securityfs"


def test_capture_of_a_capture_holds_the_same_bytes(tmp_path: Path) -> None:
    image = tmp_path / "phys.img"
    build_platform("clean").write_image(image)
    first = capture(tmp_path, f"image:{image}")
    second = tmp_path / "again"
    assert sld("capture", "--source", f"capture:{first}", "-o", str(second)).returncode == 0
    assert read_capture(str(second)).regions == read_capture(str(first)).regions


def test_capture_of_a_broken_platform_records_where_it_stopped(tmp_path: Path) -> None:
    image = tmp_path / "phys.img"
    build_platform("slrt-bad-magic").write_image(image)
    out = capture(tmp_path, f"image:{image}")
    cap = read_capture(str(out))
    assert "MTRD" in cap.meta["errors"]["slrt"]
    assert "MTRD" in str(snapshot(f"capture:{out}").errors["slrt"])


@pytest.mark.skipif(not os.access("/dev/mem", os.R_OK), reason="/dev/mem is absent or unreadable here (a container "
                    "or lockdown): the devmem source cannot be captured on this machine")
def test_devmem_capture_reads_back(tmp_path: Path) -> None:
    out = capture(tmp_path, "devmem")
    assert read_capture(str(out)).meta["kind"] == "devmem"
    assert snapshot(f"capture:{out}").registers == snapshot("devmem").registers


@pytest.mark.parametrize("source", ["image", "securityfs"])
@pytest.mark.parametrize("planted", ["PATH", "PATH.tmp", "PATH.json"])
def test_capture_never_writes_through_a_planted_link(tmp_path: Path, planted: str, source: str) -> None:
    """Into a directory the user owns: links the user planted beside the output are never written through."""
    if source == "image":
        build_platform("clean").write_image(tmp_path / "phys.img")
        spec = f"image:{tmp_path / 'phys.img'}"
    else:
        build_platform("clean").write_securityfs(tmp_path / "slaunch")
        spec = f"securityfs:{tmp_path / 'slaunch'}"
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "user" / "report"
    out.parent.mkdir()
    link = Path(planted.replace("PATH", str(out)))
    link.symlink_to(victim)
    assert sld("capture", "--source", spec, "-o", str(out)).returncode == 0
    assert victim.read_text() == "precious\n"
    captured = read_capture(str(out))
    assert out.is_file() and not out.is_symlink() and (captured.regions if source == "image" else captured.securityfs)
    assert sorted(p.name for p in out.parent.iterdir()) == sorted({"report", link.name})


def test_capture_into_a_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "slaunch"
    build_platform("clean").write_securityfs(root)
    run = sld("capture", "--source", f"securityfs:{root}", "-o", str(tmp_path))
    assert run.returncode == 3 and "is a directory" in run.stderr and "Traceback" not in run.stderr


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


META = json.dumps({"format": "sld-capture", "version": 1}).encode()


@pytest.mark.parametrize("content,why", [
    (b"not a capture at all", "not a readable capture"),
    (b"\x1f\x8b" + bytes(64), "not a readable capture"),
    (_tar({"memory/0x00000000fed30000": bytes(16)}), "no sld-capture.json"),
    (_tar({"sld-capture.json": META, "../../etc/passwd": b"x"}), "not part of a capture"),
    (_tar({"sld-capture.json": META, "securityfs/txt/sts": bytes(100)}), "more than a capture can"),
    (_tar({"sld-capture.json": b"[" * 100000}), "not JSON"),
    (_tar({"sld-capture.json": json.dumps({"format": "other"}).encode()}), "does not describe"),
])
def test_hostile_capture_files_are_source_errors(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "cap"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=why):
        open_source(f"capture:{path}")
    run = sld("inspect", "regs", "--source", f"capture:{path}")
    assert run.returncode == 3 and "Traceback" not in run.stderr


def test_read_outside_the_captured_regions_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "cap"
    write_capture(path, Capture({0xFED30000: bytes(0x10000)}, {}, {"source": "test"}))
    with open_source(f"capture:{path}") as source:
        assert source.memory is not None
        assert source.memory.read(0xFED30010, 8, "probe") == bytes(8)
        with pytest.raises(SourceError, match="was not captured") as err:
            source.memory.read(0xFED3FFFC, 8, "probe")
    assert err.value.address == 0xFED3FFFC


@pytest.fixture(scope="module")
def seed_tar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The tar inside a real capture of the clean platform's config space and one securityfs file."""
    path = tmp_path_factory.mktemp("seed") / "cap"
    write_capture(path, Capture({0xFED30000: build_platform("clean").regions()[0xFED30000][:0x400]},
                                {"txt/sts": b"0x0000000000018041\n\x00"}, {"source": "test"}))
    return gzip.decompress(path.read_bytes())


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_captures_give_only_typed_errors(tmp_path_factory: pytest.TempPathFactory, seed_tar: bytes,
                                                  data: st.DataObject) -> None:
    """The tar inside the gzip mutated (so the mutation reaches the tar reader, past gzip's CRC)."""
    blob = bytearray(seed_tar)
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    path = tmp_path_factory.mktemp("cap") / "cap"
    path.write_bytes(gzip.compress(bytes(blob[:cut])))
    try:
        with open_source(f"capture:{path}") as source:
            snap = discover(source)
    except SourceError:
        return
    assert set(snap.errors) <= {"registers", "heap", "slrt", "log"}
