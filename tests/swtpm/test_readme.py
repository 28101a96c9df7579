"""Every command the README's tour and `sld sim up` print runs as printed, with `sld` from PATH.

The README's blocks name fixed paths (/run/sld-tour, /tmp/sfs), so they run in a private mount
namespace with its own /run and /tmp (and PID namespace): as printed, and beside anything else on
this machine.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
ISOLATED = ["unshare", "-m", "--propagation", "private", "-p", "-f", "--mount-proc"]
PRIVATE = 'mount -t tmpfs sld-run /run && mount -t tmpfs sld-tmp /tmp && exec bash -euo pipefail -c "$0"'

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="a private mount namespace needs root"),
              pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is absent")]


def env() -> dict[str, str]:
    """PATH with the installed `sld` (the venv's bin) first, as after the demo."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def section_blocks(title: str) -> list[str]:
    """The fenced blocks of the README section ``## title``."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```\n(.*?)^```$", section, re.S | re.M)


def in_private_run(script: str) -> subprocess.CompletedProcess[str]:
    # A PID namespace too: whatever a failing block leaves running (its swtpm, its daemon) ends with it.
    return subprocess.run([*ISOLATED, "sh", "-c", PRIVATE, script],
                          capture_output=True, text=True, env=env(), timeout=300)


@pytest.mark.parametrize("index", [0, 1], ids=["tour", "daemon-on-the-simulator"])
def test_the_tours_commands_run_as_printed(index: int) -> None:
    blocks = section_blocks("A short tour")
    assert len(blocks) == 2
    assert all(line.startswith(("sld ", "kill ")) for line in blocks[index].splitlines())
    run = in_private_run(blocks[index])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    if index == 0:
        assert "verifying in this process (configuration /run/sld-tour/sld.toml)" in run.stderr
        assert run.stdout.count("verdict: verified") == 1 and '"result": "verified"' in run.stdout
    else:
        assert "state: running" in run.stdout and "verdict: verified" in run.stdout
    assert "simulated platform stopped" in run.stdout  # sld sim down found the swtpm sld sim up started


def printed_commands(up_stdout: str) -> dict[str, str]:
    """``  label    command`` lines of `sld sim up`'s output that name a command."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^  (\w+)\s+((?:sld|curl) .*)$", up_stdout, re.M)}


def test_the_commands_sim_up_prints_run_as_printed(tmp_path: Path) -> None:
    root, conf = tmp_path / "sim", tmp_path / "sim" / "sld.toml"
    up = subprocess.run(["sld", "sim", "up", "--scenario", "unextended", "--dir", str(root), "--daemon-config",
                         str(conf)], capture_output=True, text=True, env=env(), timeout=120)
    assert up.returncode == 0, up.stderr
    commands = printed_commands(up.stdout)
    assert set(commands) == {"verify", "local", "daemon", "status", "ask", "metrics"}

    def run(label: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(commands[label], shell=True, capture_output=True, text=True, env=env(), timeout=120)
        assert done.returncode == 0, f"{commands[label]}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done

    daemon = None
    try:
        assert "verdict: verified" in run("verify").stdout  # extends the deferred events
        assert "verdict: verified" in run("local").stdout
        # Its own session: the shell may fork the daemon rather than exec it, so the whole group is stopped.
        daemon = subprocess.Popen(commands["daemon"], shell=True, env=env(), stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
        deadline = time.monotonic() + 30
        while "state: running" not in (status := subprocess.run(commands["status"], shell=True, capture_output=True,
                                                                  text=True, env=env())).stdout:
            assert time.monotonic() < deadline, status.stdout + status.stderr
            time.sleep(0.2)
        assert "verdict: verified" in run("ask").stdout
        assert "sld_launch_verified 1.0" in run("metrics").stdout
        assert (root / "state" / "sinit.json").exists()  # the daemon's memory of the SINIT: in the sim's directory
    finally:
        if daemon is not None:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(10)
        subprocess.run(["sld", "sim", "down", "--dir", str(root)], env=env(), capture_output=True)


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "sld").exists(),
                    reason="scripts/setup.sh has not made this checkout's .venv (the demo would create one)")
def test_the_demo_puts_sld_on_path() -> None:
    """`bash scripts/demo.sh` as the README's first command, then `sld` from a plain PATH (/usr/local/bin is
    a private tmpfs here, so the host's is untouched)."""
    script = 'mount -t tmpfs sld-bin /usr/local/bin && bash scripts/demo.sh && command -v sld && sld sim list'
    run = subprocess.run([*ISOLATED, "sh", "-c", script], cwd=ROOT,
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "=== scenario: partial-extend" in run.stdout and "/usr/local/bin/sld" in run.stdout
    assert "verdict: verified" in run.stdout and "(exit 1)" in run.stdout  # the tampered log fails
