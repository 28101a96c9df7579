"""The daemon for real: a NOTIFY_SOCKET the test binds, prometheus-client's HTTP server scraped and
checked by promtool, the control socket, SIGHUP with a bad config, a PCR changed behind its back."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sld.errors import SldError
from sld.service.control import request
from sld.sim.swtpm import free_port_pair
from sld.tpm import Tpm
from tests.swtpm.conftest import Sim


class Running:
    def __init__(self, proc: subprocess.Popen[str], notify: socket.socket, root: Path, port: int, conf: Path) -> None:
        self.proc, self.notify, self.root, self.port, self.conf = proc, notify, root, port, conf
        self.messages: list[str] = []

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in m for m in self.messages):
                return
            try:
                self.messages.append(self.notify.recv(4096).decode())
            except TimeoutError:
                continue
        raise AssertionError(f"no {text!r} from sd_notify; got {self.messages}")

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def ask(self, cmd: str, **extra: object) -> dict:
        return request(str(self.root / "control.sock"), {"cmd": cmd, **extra})


def config(sim: Sim, port: int, interval: float = 1.0) -> str:
    return f"""
[source]
spec = "image:{sim.info['image']}"
[tpm]
tcti = "{sim.info['tcti']}"
locality = 2
[verify]
interval = {interval}
[metrics]
port = {port}
[control]
socket = "{sim.root / 'control.sock'}"
"""


def start(sim: Sim, tmp_path: Path, verify_keys: str = "") -> Running:
    """``sld daemon`` on the scenario that is up, with its own NOTIFY_SOCKET; ``verify_keys`` join [verify]."""
    port = free_port_pair()
    conf = tmp_path / "sld.toml"
    conf.write_text(config(sim, port).replace("[verify]\n", f"[verify]\n{verify_keys}\n"))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(0.5)
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"))
    env.pop("JOURNAL_STREAM", None)
    proc = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)], env=env,
                            stderr=subprocess.PIPE, text=True)
    return Running(proc, notify, sim.root, port, conf)


def stop(run: Running) -> None:
    if run.proc.poll() is None:
        run.proc.kill()
    run.proc.wait()
    run.notify.close()


@pytest.fixture
def daemon(sim: Sim, tmp_path: Path) -> Iterator[Running]:
    sim.up("unextended")
    run = start(sim, tmp_path)
    yield run
    stop(run)


def test_ready_after_the_first_verdict_then_watchdog_and_stopping(daemon: Running) -> None:
    daemon.wait_for("READY=1")
    status = next(m for m in daemon.messages if m.startswith("STATUS="))
    assert status.startswith("STATUS=verified")
    assert daemon.messages.index(status) < next(i for i, m in enumerate(daemon.messages) if m == "READY=1")
    daemon.wait_for("WATCHDOG=1")
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.wait_for("STOPPING=1")
    assert daemon.proc.wait(10) == 0
    assert not (daemon.root / "control.sock").exists()
    assert "Traceback" not in daemon.proc.stderr.read()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) is absent")
def test_a_real_scrape_passes_promtool_and_says_verified(daemon: Running) -> None:
    daemon.wait_for("READY=1")
    text = daemon.scrape()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "sld_launch_verified 1.0" in text
    assert 'sld_pcr_match{bank="sha256",pcr="18",state="match"} 1.0' in text
    assert 'sld_extends_performed_total{pcr="18"} 4.0' in text  # the unextended scenario's window on PCR18
    assert "process_resident_memory_bytes" in text
    assert 'sld_txt_flag{flag="senter_done",register="STS"} 1.0' in text
    assert 'sld_txt_flag{flag="txt_reset",register="ESTS"} 0.0' in text
    assert 'sld_verification_duration_seconds_bucket{le="+Inf"} 1.0' in text
    assert 'sld_platform_info{didvid="0x1b00c8086",layout="v12",log_format="crypto-agile"} 1.0' in text
    assert "sld_event_log_events 19.0" in text  # header + 11 SINIT + START + 5 + END


def test_control_socket_status_stats_verify_debug(daemon: Running) -> None:
    daemon.wait_for("READY=1")
    assert daemon.ask("status")["state"] == "running"
    stats = daemon.ask("stats")
    assert stats["stats_version"] == 2 and stats["verifications"] >= 1 and stats["durations"]["count"] >= 1
    answer = daemon.ask("verify")
    assert answer["exit_code"] == 0 and answer["verdict"]["kind"] == "verdict"
    assert daemon.ask("debug", categories=["tpm", "bogus"]) == {"debug": ["tpm"]}
    assert "unknown cmd" in daemon.ask("reboot")["error"]
    assert daemon.ask("attest", nonce="00ff")["error"].startswith("nonce: 2 bytes")  # 16..64 (sld attest)


def test_the_idle_daemon_has_imported_only_what_its_configuration_uses(sim: Sim, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15, read from the running daemon itself (PYTHONPROFILEIMPORTTIME: each import as the process
    makes it): verified, scraped and asked for its status and stats, a daemon with the quarantine disabled
    and no policy has imported neither pyroute2 (nor sld.quarantine), the evidence code and cryptography
    (they wait for an attest request), nor the appraisal code: each costs the idle daemon memory."""
    sim.up("clean")
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    run = start(sim, tmp_path)
    try:
        run.wait_for("READY=1")
        assert "sld_launch_verified 1.0" in run.scrape()
        assert run.ask("status")["state"] == "running" and run.ask("stats")["verifications"] >= 1
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(10) == 0
        lines = run.proc.stderr.read().splitlines()
    finally:
        stop(run)
    imported = {line.rpartition("|")[2].strip() for line in lines if line.startswith("import time:")}
    assert {"sld.verify", "sld.tpm", "sld.service.control", "prometheus_client"} <= imported, lines[-5:]
    unused = ("pyroute2", "cryptography", "sld.quarantine", "sld.evidence", "sld.appraisal")
    assert [m for m in sorted(imported) if m in unused or m.startswith(tuple(f"{u}." for u in unused))] == []


def test_pcr_changed_after_verification_is_its_own_event(daemon: Running, sim: Sim) -> None:
    daemon.wait_for("READY=1")
    with Tpm(sim.info["tcti"], locality=2) as tpm:
        tpm.extend(18, {"sha1": bytes(20), "sha256": bytes(32)})
    deadline = time.monotonic() + 10
    while daemon.ask("status")["state"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert daemon.ask("status")["state"] == "failed"
    assert "sld_pcr_changes_total 2.0" in daemon.scrape()  # PCR18 in both banks, reported once each
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(10)
    assert "PCR18 sha256 changed after it was verified" in daemon.proc.stderr.read()


def test_sighup_with_a_bad_config_keeps_the_old_one(daemon: Running) -> None:
    daemon.wait_for("READY=1")
    daemon.conf.write_text(daemon.conf.read_text() + "\n[verify]\nintervall = 3\n")
    daemon.proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    assert daemon.proc.poll() is None and daemon.ask("status")["state"] == "running"
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(10)
    err = daemon.proc.stderr.read()
    assert "config reload refused" in err and "Traceback" not in err


def test_verify_fast_path_through_the_daemon(daemon: Running) -> None:
    """A plain ``sld verify [--json]`` is a fresh verification by the daemon (its count moves), printed as a
    local one prints it; the installed command and ``python -m sld.cli`` take the same path."""
    daemon.wait_for("READY=1")
    sock = str(daemon.root / "control.sock")
    before = daemon.ask("stats")["verifications"]
    run = subprocess.run([str(Path(sys.executable).parent / "sld"), "verify", "--socket", sock, "--json"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    verdict = json.loads(run.stdout)
    assert [verdict[k] for k in ("schema", "kind", "result", "exit_code")] == [1, "verdict", "verified", 0]
    assert {c["id"] for c in verdict["checks"]} >= {"pcr.match"}
    text = subprocess.run([sys.executable, "-m", "sld.cli", "verify", f"--socket={sock}"], capture_output=True,
                          text=True, timeout=30)
    assert text.returncode == 0 and "\x1b[" not in text.stdout
    assert text.stdout.rstrip().splitlines()[-1].startswith("verdict: verified: ")
    assert daemon.ask("stats")["verifications"] == before + 2


def test_load_1000_scrapes_and_100_verifies_while_it_loops(daemon: Running) -> None:
    """Concurrent scrapes and control-socket verifications: zero errors, and the watchdog keeps coming."""
    from concurrent.futures import ThreadPoolExecutor

    daemon.wait_for("READY=1")
    watchdog: list[float] = []
    stop = False

    def listen() -> None:
        while not stop:
            try:
                if daemon.notify.recv(4096) == b"WATCHDOG=1":
                    watchdog.append(time.monotonic())
            except TimeoutError:
                continue

    import threading

    listener = threading.Thread(target=listen)
    listener.start()
    start = time.monotonic()
    with ThreadPoolExecutor(64) as pool:
        scrapes = [pool.submit(daemon.scrape) for _ in range(1000)]
        verifies = [pool.submit(daemon.ask, "verify") for _ in range(100)]
        texts = [f.result() for f in scrapes]
        answers = [f.result() for f in verifies]
    stop = True
    listener.join()
    elapsed = time.monotonic() - start
    assert all("sld_launch_verified 1.0" in t for t in texts)
    assert all(a["exit_code"] == 0 for a in answers)
    gaps = [b - a for a, b in zip([start, *watchdog], [*watchdog, time.monotonic()], strict=True)]
    assert watchdog and max(gaps) < 15, (elapsed, gaps)  # WatchdogSec=30 in units/sld.service


def test_metrics_over_tls_with_basic_auth(sim: Sim, tmp_path: Path) -> None:
    import base64
    import ssl
    import urllib.error
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    sim.up("clean")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port_pair()
    conf = tmp_path / "sld.toml"
    secret = crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    conf.write_text(config(sim, port).replace("[metrics]\n", f'[metrics]\ncertfile = "{cert}"\nkeyfile = "{key}"\n')
                    + f'[metrics.basic_auth_users]\nprom = "{secret}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)],
                            stderr=subprocess.DEVNULL)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{port}/metrics"

        def get(auth: str | None) -> tuple[int, str]:
            req = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"} if auth else {})
            for _ in range(100):
                try:
                    with urllib.request.urlopen(req, context=context, timeout=5) as r:
                        return r.status, r.read().decode()
                except urllib.error.HTTPError as err:
                    return err.code, ""
                except urllib.error.URLError:
                    time.sleep(0.1)
            raise AssertionError("metrics never answered")

        assert get(None)[0] == 401
        assert get(base64.b64encode(b"prom:wrong").decode())[0] == 401
        status, text = get(base64.b64encode(b"prom:s3cret").decode())
        assert status == 200 and "sld_build_info" in text
    finally:
        proc.terminate()
        proc.wait()


def test_control_socket_refuses_a_non_root_peer(daemon: Running) -> None:
    daemon.wait_for("READY=1")
    code = (f"import os, socket; os.setgid(65534); os.setuid(65534); s = socket.socket(socket.AF_UNIX); "
            f"s.connect({str(daemon.root / 'control.sock')!r})")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode != 0 and "PermissionError" in run.stderr  # mode 0600: the kernel refuses nobody
    assert oct((daemon.root / "control.sock").stat().st_mode & 0o777) == "0o600"


def test_debug_toggles_change_what_is_logged(daemon: Running) -> None:
    daemon.wait_for("READY=1")
    daemon.ask("verify")
    assert daemon.ask("debug", categories=["tpm", "sources"]) == {"debug": ["tpm", "sources"]}
    daemon.ask("verify")
    daemon.ask("debug", categories=[])
    daemon.ask("verify")
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(10)
    lines = daemon.proc.stderr.read().splitlines()
    on = next(i for i, line in enumerate(lines) if "debug categories now: tpm, sources" in line)
    off = next(i for i, line in enumerate(lines) if "debug categories now: none" in line)
    debug = [i for i, line in enumerate(lines) if "DEBUG" in line]
    assert debug and all(on < i < off for i in debug)  # debug lines only while the categories were on
    assert any("TPM2_PCR_Read" in lines[i] for i in debug) and any("heap from image:" in lines[i] for i in debug)


def test_textfile_for_node_exporter_instead_of_serving(sim: Sim, tmp_path: Path) -> None:
    sim.up("clean")
    prom = tmp_path / "sld.prom"
    conf = tmp_path / "sld.toml"
    conf.write_text(config(sim, free_port_pair()).replace("[metrics]\n", f'[metrics]\ntextfile = "{prom}"\n'))
    proc = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)],
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not prom.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "sld_launch_verified 1.0" in prom.read_text()
    finally:
        proc.terminate()
        proc.wait()


def _raw(path: str, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes as a hostile client would, then read whatever the daemon answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # the daemon may refuse the rest of a flood: what it said is still readable
            pass
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def test_hostile_control_clients_get_error_replies_and_bound_the_daemon(daemon: Running) -> None:
    """Malformed requests get a JSON error (the serving thread survives); a 400 MB line without a newline
    is refused without growing the daemon; 1,100 idle connections leave `sld status` and a verification
    working (connections are bounded and the oldest idle one is evicted)."""
    import resource

    daemon.wait_for("READY=1")
    sock = str(daemon.root / "control.sock")
    for bad in (b'{"cmd":"debug","categories":5}\n', b"[" * 5000 + b"]" * 5000 + b"\n", b"[1, 2]\n", b"\xff\xfe\n",
                b'{"cmd": "attest", "nonce": 7}\n', b"5\n"):
        reply = json.loads(_raw(sock, bad))
        assert set(reply) == {"error"} and "bad request" in reply["error"], (bad[:40], reply)
    before = _rss_kib(daemon.proc.pid)
    reply = json.loads(_raw(sock, b"x" * 400 * 1024 * 1024, timeout=60))
    assert "request too long" in reply["error"]
    assert _rss_kib(daemon.proc.pid) - before < 20 * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    idle = []
    try:
        while len(idle) < 1100:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(sock)
                idle.append(s)
            except BlockingIOError:  # the backlog is full for a moment: the daemon accepts (and evicts) on
                s.close()
                time.sleep(0.001)
        status = subprocess.run([sys.executable, "-m", "sld.cli", "status", "--socket", sock], capture_output=True,
                                text=True, timeout=30)
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.startswith("state: running\nlast verdict: verified (")
        assert daemon.ask("verify")["exit_code"] == 0
        assert len(os.listdir(f"/proc/{daemon.proc.pid}/fd")) < 200
    finally:
        for s in idle:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert daemon.ask("status")["state"] == "running"
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(10) == 0
    assert "Traceback" not in daemon.proc.stderr.read()


def test_only_a_socket_is_ever_removed(sim: Sim, tmp_path: Path) -> None:
    """A regular file at [control] socket stops start-up (exit 2) and stays; after a reload that names a
    regular file, stopping removes only the daemon's own socket."""
    sim.up("clean")
    victim = tmp_path / "precious"
    victim.write_text("not sld's\n")
    conf = tmp_path / "sld.toml"
    conf.write_text(config(sim, free_port_pair()).replace(str(sim.root / "control.sock"), str(victim)))
    run = subprocess.run([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "is not a socket: refusing to remove it" in run.stderr
    assert victim.read_text() == "not sld's\n"
    conf.write_text(config(sim, free_port_pair()))
    proc = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)],
                            stderr=subprocess.PIPE, text=True)
    own = sim.root / "control.sock"
    deadline = time.monotonic() + 20
    while not own.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    again = subprocess.run([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)], capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 2 and "another sld daemon answers" in again.stderr
    conf.write_text(config(sim, free_port_pair()).replace(str(own), str(victim)))
    proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert victim.read_text() == "not sld's\n" and not own.exists()
    assert "Traceback" not in proc.stderr.read()


def _as_nobody(groups: list[int], *argv: str) -> tuple[int, str, str]:
    """``sld ARGV`` in a forked child that is uid/gid 65534 with ``groups`` as supplementary groups (the
    interpreter under root's home is not executable for nobody, so the child runs sld.cli in-process)."""
    import sld.cli
    import sld.commands.service
    import sld.report  # noqa: F401 - loaded before the child loses the right to read them

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        sys.stdout, sys.stderr = os.fdopen(out_w, "w"), os.fdopen(err_w, "w")  # not pytest's capture
        os.setgroups(groups)
        os.setgid(65534)
        os.setuid(65534)
        code = sld.cli.run(list(argv))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    os.close(out_w)
    os.close(err_w)
    with os.fdopen(out_r) as out, os.fdopen(err_r) as err:
        stdout, stderr = out.read(), err.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), stdout, stderr


def test_supplementary_groups_and_permission_denied(sim: Sim, tmp_path: Path) -> None:
    """[control] group admits a client that holds the group only as a supplementary group; anyone else
    hears "permission denied" (from the kernel at mode 0660, from the daemon when the mode lets it in),
    `sld status` prints that (exit 2), and `--json` prints it as a JSON error object."""
    import grp
    import tempfile

    sim.up("clean")
    group = grp.getgrnam("adm")
    public = Path(tempfile.mkdtemp(prefix="sld-ctl-"))
    public.chmod(0o755)
    sock = public / "control.sock"
    conf = tmp_path / "sld.toml"
    conf.write_text(config(sim, free_port_pair()).replace(str(sim.root / "control.sock"), str(sock))
                    + f'group = "{group.gr_name}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)],
                            stderr=subprocess.PIPE, text=True)

    def status(*extra: str, groups: list[int]) -> tuple[int, str, str]:
        return _as_nobody(groups, "status", "--socket", str(sock), *extra)

    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not sock.exists() or request(str(sock), {"cmd": "status"})["state"]
                                               == "starting"):
            time.sleep(0.1)
        code, out, err = status(groups=[group.gr_gid])
        assert code == 0 and out.startswith("state: running"), out + err
        code, out, err = status(groups=[])
        assert code == 2 and "permission denied" in err and "no sld daemon answers" not in err
        sock.chmod(0o666)  # the kernel lets everyone in: the daemon's own peer check refuses
        code, out, err = status("--json", groups=[])
        answer = json.loads(out)
        assert code == 2 and answer["kind"] == "error" and "permission denied" in answer["error"], out + err
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(public, ignore_errors=True)


def _until(sock: str, cmd: str, done: Callable[[dict], bool], timeout: float = 20) -> None:
    """Ask ``cmd`` until ``done(answer)`` (the socket appears once the daemon is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if done(request(sock, {"cmd": cmd})):
                return
        except SldError:
            pass
        time.sleep(0.2)


def test_a_textfile_that_cannot_be_written_is_journaled_and_counted(sim: Sim, tmp_path: Path) -> None:
    sim.up("clean")
    prom = tmp_path / "sld.prom"
    prom.mkdir()  # a directory where the file should be: every write fails (a missing directory is refused at load)
    conf = tmp_path / "sld.toml"
    conf.write_text(config(sim, free_port_pair()).replace("[metrics]\n", f'[metrics]\ntextfile = "{prom}"\n'))
    proc = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)],
                            stderr=subprocess.PIPE, text=True)
    sock = str(sim.root / "control.sock")
    try:
        _until(sock, "stats", lambda a: a["output_errors"].get("textfile", 0) >= 2)
        assert request(sock, {"cmd": "status"})["state"] == "running"
        assert request(sock, {"cmd": "stats"})["output_errors"]["textfile"] >= 2  # every interval, not fatal
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    err = proc.stderr.read()
    assert f"cannot write the metrics textfile {prom}" in err and "Traceback" not in err


@pytest.mark.parametrize("scenario", ["tampered-log", "uncovered-bank"])
def test_failed_check_ids_are_the_same_in_json_metrics_and_journal(sim: Sim, tmp_path: Path, scenario: str) -> None:
    sim.up(scenario)
    port = free_port_pair()
    conf = tmp_path / "sld.toml"
    conf.write_text(config(sim, port))
    proc = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)],
                            stderr=subprocess.PIPE, text=True)
    sock = str(sim.root / "control.sock")
    try:
        _until(sock, "status", lambda a: a["state"] == "failed")
        verdict = request(sock, {"cmd": "verify"})["verdict"]
        failed = [c["id"] for c in verdict["checks"] if c["status"] == "fail"]
        assert failed and request(sock, {"cmd": "status"})["verdict"]["failed_checks"] == failed
        assert scenario != "uncovered-bank" or failed == ["pcr.banks"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert all(f'sld_check_passed{{check="{check}"}} 0.0' in text for check in failed)
        # every allocated bank has a sld_pcr_match row whose state is the JSON's word for it, 1 only for match
        states = {(str(p["pcr"]), bank, state) for p in verdict["pcrs"] for bank, state in p["banks"].items()}
        rows = re.findall(r'^sld_pcr_match\{bank="(\w+)",pcr="(\d+)",state="([\w-]+)"\} (\S+)$', text, re.M)
        assert {(pcr, bank, state) for bank, pcr, state, _ in rows} == states
        assert all((value == "1.0") == (state == "match") for *_, state, value in rows)
        uncovered = sorted({bank for _, bank, state in states if state == "not-covered"})
        assert uncovered == (["sha384"] if scenario == "uncovered-bank" else [])
        assert len(rows) == len(verdict["pcrs"]) * (len(verdict["banks"]) + len(uncovered)) > 0
        if shutil.which("promtool"):
            check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    journal = proc.stderr.read()
    assert f"failed_checks={','.join(failed)}" in journal  # SLD_FAILED_CHECKS in the journal
    assert f"not_covered={','.join(uncovered)}" in journal  # SLD_NOT_COVERED: the same banks, the same word


def test_idle_and_slow_control_clients_are_timed_out(daemon: Running) -> None:
    """A client that sends nothing, and one that trickles a byte a second, are both closed once
    REQUEST_TIMEOUT has passed since they connected: trickling does not extend the deadline."""
    from sld.service.control import REQUEST_TIMEOUT

    daemon.wait_for("READY=1")
    idle, slow = (socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2))
    for s in (idle, slow):
        s.settimeout(REQUEST_TIMEOUT + 5)
        s.connect(str(daemon.root / "control.sock"))
    start = time.monotonic()
    slow.setblocking(False)
    closed_at = None
    while closed_at is None and time.monotonic() - start < REQUEST_TIMEOUT + 4:
        try:
            slow.send(b" ")
            if slow.recv(1) == b"":
                closed_at = time.monotonic() - start
        except BlockingIOError:
            pass
        except OSError:
            closed_at = time.monotonic() - start
        time.sleep(1)
    assert closed_at is not None and REQUEST_TIMEOUT - 1 <= closed_at <= REQUEST_TIMEOUT + 3
    assert idle.recv(1) == b""  # the idle one was closed too
    assert daemon.ask("status")["state"] == "running"


def test_a_notify_socket_nobody_reads_freezes_nothing(daemon: Running) -> None:
    """The notify socket's queue fills when its reader stalls (10 datagrams by default): sd_notify is
    dropped after a bounded wait, and the control socket and verification keep answering meanwhile."""
    daemon.wait_for("READY=1")
    time.sleep(8)  # STATUS= and WATCHDOG=1 every second, nobody reading
    start = time.monotonic()
    assert daemon.ask("status")["state"] == "running"
    assert daemon.ask("verify")["exit_code"] == 0
    assert time.monotonic() - start < 5
