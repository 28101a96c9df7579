"""`sld verify` without the daemon's verdict: a local one reads the daemon's configuration and says so;
a degraded daemon is reported as it is, never replaced by a verdict made here."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from sld.sim.swtpm import free_port_pair
from tests.swtpm.conftest import Sim, sld


def test_a_local_verification_uses_the_configuration_and_the_options_over_it(sim: Sim, tmp_path: Path) -> None:
    conf = tmp_path / "sld.toml"
    sim.up("unextended", "--daemon-config", str(conf))
    run = sld("verify", "--config", str(conf), "--mode", "validate", "--json")
    verdict = json.loads(run.stdout)
    assert verdict["source"] == f"image:{sim.info['image']}" and verdict["mode"] == "validate"
    assert run.returncode == 1 and verdict["extended"] == []  # validate: the deferred events stay deferred
    assert run.stderr == f"sld: verifying in this process (configuration {conf})\n"
    dead = conf.read_text().replace(sim.info["tcti"], f"swtpm:host=127.0.0.1,port={free_port_pair()}")
    conf.write_text(dead)
    run = sld("verify", "--config", str(conf), "--tcti", sim.info["tcti"], "--json")
    assert run.returncode == 0, run.stdout + run.stderr  # --tcti over [tpm] tcti; [tpm] locality = 2 kept
    assert json.loads(run.stdout)["extended"]


def test_a_degraded_daemon_is_reported_with_its_reason_and_nothing_is_verified_here(sim: Sim, tmp_path: Path) -> None:
    conf = tmp_path / "sld.toml"
    sim.up("clean", "--daemon-config", str(conf))
    conf.write_text(conf.read_text().replace(sim.info["tcti"], f"swtpm:host=127.0.0.1,port={free_port_pair()}"))
    sock = str(sim.root / "control.sock")
    daemon = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)],
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while '"state": "degraded"' not in (status := sld("status", "--socket", sock, "--json")).stdout:
            assert time.monotonic() < deadline, status.stdout + status.stderr
            time.sleep(0.2)
        text = sld("verify", "--socket", sock)
        assert text.returncode == 4 and text.stdout == ""
        assert text.stderr.startswith(f"sld: the daemon on {sock} is degraded and did not verify: ")
        assert "TPM" in text.stderr and "verifying in this process" not in text.stderr
        machine = sld("verify", "--socket", sock, "--json")
        error = json.loads(machine.stdout)
        assert machine.returncode == 4 and error["kind"] == "error" and error["state"] == "degraded"
        assert error["exit_code"] == 4 and "TPM" in error["error"]
    finally:
        daemon.terminate()
        daemon.wait(10)
