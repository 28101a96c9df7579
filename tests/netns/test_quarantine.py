"""Quarantine proven in two network namespaces the test creates, joined by a veth pair (never a real
interface): allowed traffic passes, everything else is dropped, lift restores it, and the kernel
keeps the filter after the process that installed it is gone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sld.quarantine import tc
from sld.quarantine.pcap import COMPILE_SECONDS, tc_program
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


DEBIAN_PYTHON = Path("/usr/bin/python3")
DEBIAN_PYROUTE2 = Path("/usr/lib/python3/dist-packages/pyroute2")


@pytest.mark.skipif(not DEBIAN_PYROUTE2.is_dir() or not DEBIAN_PYTHON.exists(),
                    reason="Debian 12's python3 with python3-pyroute2 (0.7.2) is not installed")
def test_debian_12_pyroute2_applies_lists_and_lifts_the_quarantine(pair: tuple[str, str]) -> None:
    """What the .deb runs: sld's cls_bpf messages on Debian's python3-pyroute2 0.7.2, inside the
    server's namespace as the daemon runs on a host; the venv's pyroute2 lists the same filters."""
    client, server = pair
    code = f"""
import sys, pyroute2
from sld.quarantine import tc
from sld.quarantine.pcap import tc_program
assert pyroute2.__file__.startswith("{DEBIAN_PYROUTE2}"), pyroute2.__file__
program = tc_program("tcp port {ALLOWED}")
if sys.argv[1] == "apply":
    tc.apply("vB", program)
    tc.apply("vB", program)
    listed = tc.filters("vB")
    assert len(listed) == 2 and all(f.ours and f.ops == len(program) and f.runs(program) for f in listed), listed
else:
    print(tc.lift("vB"), len(tc.filters("vB")))
"""
    env = {"PYTHONPATH": str(Path(__file__).parents[2]), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    def debian(action: str) -> str:
        run = subprocess.run(["ip", "netns", "exec", server, str(DEBIAN_PYTHON), "-c", code, action],
                             capture_output=True, text=True, timeout=60, env=env)
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    debian("apply")
    assert sorted(f.direction for f in tc.status("vB", netns=server)) == ["egress", "ingress"]
    assert connects(client, ALLOWED, timeout=3) and not connects(client, BLOCKED, timeout=1.5)
    assert debian("lift") == "2 0"
    assert tc.status("vB", netns=server) == [] and connects(client, BLOCKED, timeout=3)


def _in(ns: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "sld.cli", *args], capture_output=True,
                          text=True, timeout=60, **kw)  # type: ignore[call-overload]


QUARANTINE = f'[quarantine]\nenabled = true\ninterfaces = ["vB"]\nallow = "tcp port {ALLOWED}"\n'


def _daemon_config(tmp_path, ns: str, scenario: str, quarantine: str = QUARANTINE,
                   metrics: str = "enabled = false") -> str:
    import json

    up = tmp_path / f"{scenario}.up.json"  # one simulator per scenario, however many configurations use it
    if not up.exists():
        run = _in(ns, "sim", "up", "--scenario", scenario, "--dir", str(tmp_path / scenario), "--json")
        assert run.returncode == 0, run.stderr
        up.write_text(run.stdout)
    info = json.loads(up.read_text())
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
{metrics}
[control]
socket = "{tmp_path / 'control.sock'}"
{quarantine}""")
    return str(conf)


def _wait_state(sock: str, state: str, quarantined: bool) -> None:
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


def _tc(ns: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "tc", *args], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("tc") is None, reason="tc (Debian iproute2) is absent")
def test_a_foreign_filter_ahead_of_sld_is_found_and_sld_goes_in_front_again(pair: tuple[str, str]) -> None:
    """tc lets another cls_bpf filter share preference 1 and runs the newest first: sld cannot stop it
    being added, so it finds it and re-applies its own filter in front (the hook is never without one)."""
    from sld.config import QuarantineConfig
    from sld.quarantine.policy import Quarantine

    client, server = pair
    q = Quarantine(QuarantineConfig(enabled=True, interfaces=("vB",), allow=f"tcp port {ALLOWED}"), netns=server)
    assert q.decide("failed") == "applied" and q.active
    assert {f.prio for f in tc.status("vB", netns=server)} == {1}  # the highest priority tc lets anyone set
    accept_all = ("protocol", "all", "bpf", "bytecode", "1,6 0 0 0", "da")  # returns TC_ACT_OK for every packet
    _tc(server, "filter", "add", "dev", "vB", "ingress", "pref", "2", *accept_all)
    assert not connects(client, BLOCKED, timeout=1.5) and q.observe().overtaking == ()  # runs after sld's: harmless
    for direction in ("ingress", "egress"):  # cls_bpf runs the newest filter of a priority first
        _tc(server, "filter", "add", "dev", "vB", direction, "pref", "1", *accept_all)
    assert connects(client, BLOCKED, timeout=3)  # the bypass is real
    overtaking = q.observe().overtaking
    assert [(f.direction, f.prio, f.kind) for f in overtaking] == [("ingress", 1, "bpf"), ("egress", 1, "bpf")]
    assert "bpf filter pref 1" in str(overtaking[0]) and "vB ingress" in str(overtaking[0])
    shown = _in(server, "quarantine", "status", "--interface", "vB")
    assert shown.returncode == 0 and "warning: bpf filter pref 1 handle 0x1 on vB ingress runs before" in shown.stdout
    done = q.decide("failed")  # the reconciliation of every interval
    assert done == ("re-applied in front of bpf filter pref 1 handle 0x1 on vB ingress; "
                    "bpf filter pref 1 handle 0x1 on vB egress"), done
    assert not connects(client, BLOCKED, timeout=1.5) and connects(client, ALLOWED, timeout=3)
    listed = tc.filters("vB", netns=server)
    for direction in ("ingress", "egress"):  # in run order: sld's (its other handle) first, the foreign one behind
        first = [(f.prio, f.handle, f.ours) for f in listed if f.direction == direction and f.prio == 1]
        assert first == [(1, tc.HANDLES[1], True), (1, 1, False)], listed
    assert q.active and q.observe().overtaking == () and q.decide("failed") is None  # in front: nothing to do
    shown = _in(server, "quarantine", "status", "--interface", "vB")
    assert "warning" not in shown.stdout and shown.stdout.count("0x51e") == 2, shown.stdout
    assert tc.lift("vB", netns=server) == 2 and tc.status("vB", netns=server) == []
    assert connects(client, BLOCKED, timeout=3)  # the foreign filters stay: sld removes only its own


@pytest.mark.skipif(shutil.which("tc") is None, reason="tc (Debian iproute2) is absent")
def test_a_filter_that_keeps_sld_out_of_pref_1_is_reported_and_sld_takes_the_next(pair: tuple[str, str]) -> None:
    """A filter of another protocol (or kind) at pref 1 first: the kernel will not let sld's share it, so
    sld's goes to pref 2 on that hook (still quarantining what the squatter passes on, and the other
    hook), the squatter is reported as running first, nothing churns; once it goes, sld's takes pref 1."""
    from sld.config import QuarantineConfig
    from sld.quarantine.policy import Quarantine

    client, server = pair
    _tc(server, "qdisc", "add", "dev", "vB", "clsact")
    _tc(server, "filter", "add", "dev", "vB", "ingress", "pref", "1", "protocol", "ip", "bpf", "bytecode",
        "1,6 0 0 0", "da")  # accepts every IPv4 packet coming in
    q = Quarantine(QuarantineConfig(enabled=True, interfaces=("vB",), allow=f"tcp port {ALLOWED}"), netns=server)
    assert q.decide("failed") == "applied" and q.active
    assert {(f.direction, f.prio) for f in tc.status("vB", netns=server)} == {("ingress", 2), ("egress", 1)}
    assert [(f.direction, f.prio, f.protocol) for f in q.observed.overtaking] == [("ingress", 1, 0x0800)]
    assert not connects(client, BLOCKED, timeout=1.5)  # the egress filter still drops the answers
    assert q.decide("failed") is None and q.changes == 1  # as far front as tc allows: not re-applied each time
    shown = _in(server, "quarantine", "status", "--interface", "vB")
    assert "warning: bpf filter pref 1 handle 0x1 on vB ingress runs before" in shown.stdout, shown.stdout
    _tc(server, "filter", "del", "dev", "vB", "ingress", "pref", "1", "protocol", "ip", "handle", "1", "bpf")
    assert q.decide("failed") == "re-applied" and q.observed.overtaking == ()
    assert {(f.direction, f.prio) for f in tc.status("vB", netns=server)} == {("ingress", 1), ("egress", 1)}
    assert len(tc.filters("vB", netns=server)) == 2  # sld's pref 2 filter went once the pref 1 one was in
    assert tc.lift("vB", netns=server) == 2 and connects(client, BLOCKED, timeout=3)


def test_a_quarantine_that_cannot_work_is_refused_at_daemon_start(pair: tuple[str, str], tmp_path) -> None:
    client, server = pair
    hosts = " or ".join(f"ether host 02:00:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(500))
    for quarantine, key in ((QUARANTINE.replace('"vB"', '"vNone"'), "quarantine.interfaces"),
                            (QUARANTINE.replace(f'"tcp port {ALLOWED}"', f'"{hosts}"'), "quarantine.allow")):
        conf = tmp_path / "sld.toml"
        conf.write_text(f'[tpm]\ntcti = "swtpm:port=9"\n[metrics]\nenabled = false\n[control]\n'
                        f'socket = "{tmp_path / "control.sock"}"\n{quarantine}')
        run = _in(server, "daemon", "--config", str(conf))
        assert run.returncode == 2 and key in run.stderr and "Traceback" not in run.stderr, run.stderr
        assert tc.status("vB", netns=server) == []
    by_hand = _in(server, "quarantine", "apply", "--interface", "vNone")
    assert by_hand.returncode == 2 and "quarantine.interfaces" in by_hand.stderr and "vNone" in by_hand.stderr


def _until(sock: str, check, what: str) -> dict:
    from sld.errors import SourceError
    from sld.service.control import request

    deadline, answer = time.monotonic() + 20, {}
    while time.monotonic() < deadline:
        try:
            answer = request(sock, {"cmd": "status"})
            if check(answer):
                return answer
        except SourceError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"daemon never reached {what}: {answer}")


@pytest.mark.swtpm
@pytest.mark.skipif(shutil.which("swtpm") is None or shutil.which("tc") is None, reason="swtpm or tc is absent")
def test_daemon_reconciles_with_the_kernel_every_interval(pair: tuple[str, str], tmp_path) -> None:
    """Lifted by hand while the verdict still fails: re-applied. A foreign filter that runs first: status,
    metric and journal say so. A reload that disables the quarantine: the filters go."""
    client, server = pair
    port = 39300 + os.getpid() % 500
    conf = _daemon_config(tmp_path, server, "tampered-log", metrics=f"port = {port}")
    sock = str(tmp_path / "control.sock")
    daemon = subprocess.Popen(["ip", "netns", "exec", server, sys.executable, "-m", "sld.cli", "daemon", "--config",
                               conf], stderr=subprocess.PIPE, text=True)
    try:
        _until(sock, lambda a: a["state"] == "failed" and a["quarantined"], "failed + quarantined")
        lift = _in(server, "quarantine", "lift", "--force", "--config", conf)
        assert lift.returncode == 0 and "removed 2" in lift.stdout, lift.stdout + lift.stderr
        # (no connection attempt here: the daemon may re-apply within its 1 s interval before one is made)
        _until(sock, lambda a: a["quarantined"] and len(tc.status("vB", netns=server)) == 2, "re-applied")
        assert not connects(client, BLOCKED, timeout=1.5)

        _tc(server, "filter", "add", "dev", "vB", "ingress", "pref", "1", "protocol", "all", "bpf", "bytecode",
            "1,6 0 0 0", "da")  # another tool's accept-all, ahead of sld's
        _until(sock, lambda a: a["quarantined"] and not a["quarantine_overtaken_by"]
               and [f.ours for f in tc.filters("vB", netns=server) if f.direction == "ingress"][:2] == [True, False],
               "sld's filter in front again")
        assert not connects(client, BLOCKED, timeout=1.5)
        scrape = subprocess.run(["ip", "netns", "exec", server, sys.executable, "-c",
                                 f"import urllib.request; print(urllib.request.urlopen("
                                 f"'http://127.0.0.1:{port}/metrics', timeout=5).read().decode())"],
                                capture_output=True, text=True, timeout=30)
        assert "sld_quarantine_foreign_filters 0.0" in scrape.stdout and "sld_quarantine_active 1.0" in scrape.stdout
        _tc(server, "filter", "del", "dev", "vB", "ingress", "pref", "1", "protocol", "all", "handle", "1", "bpf")

        slow = " or ".join(f"host 10.{i // 250}.{i % 250}.1" for i in range(1000))  # libpcap: ~25 s here
        _daemon_config(tmp_path, server, "tampered-log", quarantine=QUARANTINE.replace(f"tcp port {ALLOWED}", slow),
                       metrics=f"port = {port}")
        daemon.send_signal(signal.SIGHUP)  # refused after COMPILE_SECONDS; the running quarantine stays
        time.sleep(COMPILE_SECONDS + 1)
        _until(sock, lambda a: a["quarantined"] and len(tc.status("vB", netns=server)) == 2, "kept after the refusal")
        assert not connects(client, BLOCKED, timeout=1.5)

        _daemon_config(tmp_path, server, "tampered-log", quarantine="[quarantine]\nenabled = false\n",
                       metrics=f"port = {port}")
        daemon.send_signal(signal.SIGHUP)
        _until(sock, lambda a: not a["quarantined"] and not tc.status("vB", netns=server), "lifted by the reload")
        assert connects(client, BLOCKED, timeout=3)
    finally:
        daemon.terminate()
        err = daemon.communicate(timeout=20)[1]
        _in(server, "sim", "down", "--dir", str(tmp_path / "tampered-log"))
    assert "quarantine re-applied on vB (failed)" in err, err
    assert "quarantine re-applied in front of bpf filter pref 1 handle 0x1 on vB ingress on vB (failed)" in err, err
    assert "no longer configured (reload)" in err and "Traceback" not in err
    assert f"config reload refused, keeping the running one: quarantine.allow: libpcap did not compile the " \
           f"expression within {COMPILE_SECONDS:g} s" in err, err
