"""Quarantine proven in two network namespaces the test creates, joined by a veth pair (never a real
interface): allowed traffic passes, everything else is dropped, lift restores it, and the kernel
keeps the filter after the process that installed it is gone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from sld.quarantine import tc
from sld.quarantine.pcap import tc_program
from tests.netns.net import namespaces, veth

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
              pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 is absent")]

ALLOWED, BLOCKED = 2222, 8080
SERVER, CLIENT = "192.0.2.2", "192.0.2.1"


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    """(client netns, server netns) with veth vA (client) <-> vB (server) and TCP listeners on vB's side."""
    with namespaces("client", "server") as ns:
        a, b = ns["client"], ns["server"]
        veth(a, "vA", CLIENT, b, "vB", SERVER)
        listeners = [subprocess.Popen(
            ["ip", "netns", "exec", b, sys.executable, "-c",
             f"import socket; s=socket.create_server(('{SERVER}', {port})); "
             "[c.close() for c, _ in iter(s.accept, None)]"]) for port in (ALLOWED, BLOCKED)]
        try:
            assert connects(a, ALLOWED, timeout=5) and connects(a, BLOCKED, timeout=5)
            yield a, b
        finally:
            for p in listeners:
                p.kill()
                p.wait()


def connects(ns: str, port: int, timeout: float = 1.0) -> bool:
    code = (f"import socket,time,sys\nend=time.time()+{timeout}\n"
            "while True:\n"
            f"  try: socket.create_connection(('{SERVER}', {port}), timeout=0.5).close(); sys.exit(0)\n"
            "  except OSError:\n"
            "    if time.time() > end: sys.exit(1)\n"
            "    time.sleep(0.05)\n")
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code]).returncode == 0


def pings(ns: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W1", SERVER],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("ping") is None, reason="ping (Debian iputils-ping) is absent")
def test_quarantine_drops_all_but_the_allowed_traffic_and_lift_restores(pair: tuple[str, str]) -> None:
    client, server = pair
    program = tc_program(f"tcp port {ALLOWED}")
    tc.apply("vB", program, netns=server)
    tc.apply("vB", program, netns=server)  # idempotent: still one filter per direction
    installed = tc.status("vB", netns=server)
    assert sorted(f.direction for f in installed) == ["egress", "ingress"]
    assert all(f.prio == tc.PRIO and f.name == tc.NAME and f.ops == len(program) for f in installed)
    assert connects(client, ALLOWED, timeout=3)
    assert not connects(client, BLOCKED, timeout=1.5)
    assert not pings(client)
    assert tc.lift("vB", netns=server) == 2
    assert tc.status("vB", netns=server) == []
    assert tc.lift("vB", netns=server) == 0
    assert connects(client, BLOCKED, timeout=3) and pings(client)


def test_the_kernel_keeps_the_quarantine_after_the_installer_is_killed(pair: tuple[str, str]) -> None:
    client, server = pair
    code = ("import os, signal\nfrom sld.quarantine import tc\nfrom sld.quarantine.pcap import tc_program\n"
            f"tc.apply('vB', tc_program('tcp port {ALLOWED}'), netns='{server}')\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    assert len(tc.status("vB", netns=server)) == 2
    assert not connects(client, BLOCKED, timeout=1.5)
    tc.lift("vB", netns=server)
    assert connects(client, BLOCKED, timeout=3)


def _in(ns: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "sld.cli", *args], capture_output=True,
                          text=True, timeout=60, **kw)  # type: ignore[call-overload]


def _daemon_config(tmp_path, ns: str, scenario: str) -> str:
    import json

    sim_dir = tmp_path / scenario
    run = _in(ns, "sim", "up", "--scenario", scenario, "--dir", str(sim_dir), "--json")
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout)
    conf = tmp_path / f"{scenario}.toml"
    conf.write_text(f"""
[source]
spec = "image:{info['image']}"
[tpm]
tcti = "{info['tcti']}"
locality = 2
[verify]
interval = 1
[metrics]
enabled = false
[control]
socket = "{tmp_path / 'control.sock'}"
[quarantine]
enabled = true
interfaces = ["vB"]
allow = "tcp port {ALLOWED}"
""")
    return str(conf)


def _wait_state(sock: str, state: str, quarantined: bool) -> None:
    import time

    from sld.errors import SourceError
    from sld.service.control import request

    deadline = time.monotonic() + 20
    answer: dict = {}
    while time.monotonic() < deadline:
        try:
            answer = request(sock, {"cmd": "status"})
            if answer["state"] == state and answer["quarantined"] is quarantined:
                return
        except SourceError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"daemon never reached {state}/{quarantined}: {answer}")


@pytest.mark.swtpm
@pytest.mark.skipif(shutil.which("swtpm") is None, reason="swtpm is absent")
def test_daemon_quarantines_survives_kill_9_and_lifts_on_a_passing_restart(pair: tuple[str, str], tmp_path) -> None:
    client, server = pair
    tampered = _daemon_config(tmp_path, server, "tampered-log")
    clean = _daemon_config(tmp_path, server, "clean")
    sock = str(tmp_path / "control.sock")
    cmd = ["ip", "netns", "exec", server, sys.executable, "-m", "sld.cli", "daemon", "--config"]
    first = subprocess.Popen([*cmd, tampered], stderr=subprocess.PIPE, text=True)
    try:
        _wait_state(sock, "failed", True)
        assert connects(client, ALLOWED, timeout=3) and not connects(client, BLOCKED, timeout=1.5)
        first.kill()
        first.wait()
        assert not connects(client, BLOCKED, timeout=1.5)  # the kernel still holds the filter
        second = subprocess.Popen([*cmd, clean], stderr=subprocess.PIPE, text=True)
        try:
            _wait_state(sock, "running", False)
            assert connects(client, BLOCKED, timeout=3)
        finally:
            second.terminate()
            err = second.communicate(timeout=10)[1]
        assert "quarantine found in place at start-up" in err and "quarantine lifted on vB" in err
    finally:
        if first.poll() is None:
            first.kill()
        for scenario in ("tampered-log", "clean"):
            _in(server, "sim", "down", "--dir", str(tmp_path / scenario))
