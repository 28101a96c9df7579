"""Faults while the daemon runs: the TPM transport cut and restored, the platform source removed and
restored. The daemon goes degraded with the reason, keeps its watchdog, and recovers on its own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sld.service.control import request
from sld.sim.proxy import TpmProxy
from tests.swtpm.conftest import Sim


class Daemon:
    def __init__(self, proc: subprocess.Popen[str], notify: socket.socket, sock: str) -> None:
        self.proc, self.notify, self.sock = proc, notify, sock

    def status(self) -> dict:
        return request(self.sock, {"cmd": "status"})

    def wait_state(self, state: str, timeout: float = 15) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            try:
                if self.status()["state"] == state:
                    return time.monotonic() - start
            except Exception:  # noqa: BLE001 - the socket appears once the daemon is up
                pass
            time.sleep(0.1)
        raise AssertionError(f"never {state}: {self.status()}")

    def watchdogs(self, seconds: float) -> int:
        end, n = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            try:
                n += self.notify.recv(4096) == b"WATCHDOG=1"
            except TimeoutError:
                pass
        return n


@pytest.fixture
def proxied(sim: Sim, tmp_path: Path) -> Iterator[tuple[Daemon, TpmProxy, Path]]:
    info = sim.up("clean")
    port = int(info["tcti"].rsplit("=", 1)[1])
    proxy = TpmProxy(port)
    conf = tmp_path / "sld.toml"
    conf.write_text(f"""
[source]
spec = "image:{info['image']}"
[tpm]
tcti = "{proxy.tcti}"
[verify]
interval = 1
lock = "{tmp_path / 'lock'}"
[metrics]
enabled = false
[control]
socket = "{tmp_path / 'control.sock'}"
""")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(0.2)
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"))
    proc = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)], env=env,
                            stderr=subprocess.PIPE, text=True)
    daemon = Daemon(proc, notify, str(tmp_path / "control.sock"))
    daemon.wait_state("running")
    yield daemon, proxy, Path(info["image"])
    proxy.stop()
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=10)[1]
    assert "Traceback" not in err
    notify.close()


def test_tpm_cut_then_restored(proxied: tuple[Daemon, TpmProxy, Path]) -> None:
    daemon, proxy, _ = proxied
    proxy.stop()
    daemon.wait_state("degraded")
    assert "TPM unavailable" in daemon.status()["summary"]
    assert daemon.watchdogs(2.5) >= 1  # the main loop stays healthy while the TPM is gone
    proxy.start()
    assert daemon.wait_state("running") < 3  # within one interval (1 s) plus a verification


def test_source_removed_then_restored(proxied: tuple[Daemon, TpmProxy, Path]) -> None:
    daemon, _, image = proxied
    hidden = image.with_suffix(".away")
    image.rename(hidden)
    try:
        daemon.wait_state("degraded")
        assert "image" in daemon.status()["summary"]
    finally:
        hidden.rename(image)
    assert daemon.wait_state("running") < 3
