"""`sld sim up/down`: a directory per user (or per invocation), and `down` signals only the swtpm it started."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from sld.sim.swtpm import process_identity
from tests.swtpm.conftest import Sim, sld


def _alive(pid: int) -> bool:
    return process_identity(pid) is not None and Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def _bystander() -> subprocess.Popen[bytes]:
    """Someone else's process: what a stale or edited sim.json may name once its swtpm is gone."""
    return subprocess.Popen(["sleep", "60"])


def test_down_stops_the_swtpm_it_started(sim: Sim) -> None:
    info = sim.up("clean")
    pid = json.loads((sim.root / "sim.json").read_text())["pid"]
    assert _alive(pid)
    run = sld("sim", "down", "--dir", str(sim.root))
    assert run.returncode == 0 and "stopped" in run.stdout
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid) and not (sim.root / "sim.json").exists() and info["tcti"]


def test_down_leaves_alone_a_pid_that_is_no_longer_its_swtpm(sim: Sim) -> None:
    sim.up("clean")
    state = sim.root / "sim.json"
    record = json.loads(state.read_text())
    other = _bystander()
    try:
        for edit in ({"pid": other.pid}, {"pid": other.pid, "process": None}):
            state.write_text(json.dumps({**record, **edit}))
            run = sld("sim", "down", "--dir", str(sim.root))
            assert run.returncode == 0 and "left alone" in run.stderr, run.stderr
            assert other.poll() is None and _alive(other.pid)  # not signalled, not shut down
            assert _alive(record["pid"])  # nor the swtpm, which nothing pointed at any more
    finally:
        other.kill()
        other.wait()
        state.write_text(json.dumps(record))  # the fixture's down stops the real swtpm


def test_default_directory_is_the_users_runtime_directory(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    run = sld("sim", "up", "--scenario", "clean", "--json", env=env)
    try:
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["image"] == str(runtime / "sld-sim" / "phys.img")
        assert (os.stat(runtime / "sld-sim").st_mode & 0o777) == 0o700
    finally:
        down = sld("sim", "down", env=env)
    assert "stopped" in down.stdout and not (runtime / "sld-sim" / "sim.json").exists()


def test_a_directory_that_is_a_link_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "sim"
    link.symlink_to(target)
    run = sld("sim", "up", "--scenario", "clean", "--dir", str(link))
    assert run.returncode != 0 and "refusing" in run.stderr and "Traceback" not in run.stderr
    assert list(target.iterdir()) == []


def test_daemon_config_replaces_a_planted_link(sim: Sim, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    conf = tmp_path / "sld.toml"
    conf.symlink_to(victim)
    info = sim.up("clean", "--daemon-config", str(conf))
    assert victim.read_text() == "precious\n" and conf.is_file() and not conf.is_symlink()
    assert f"image:{info['image']}" in conf.read_text()
