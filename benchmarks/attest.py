"""`sld attest` answered by the running daemon against one `tpm2_quote` process with the same AK and
selection (PCR17-22 of every allocated bank), each writing what it attests to a file: sld the evidence
JSON (one quote per bank, PCR values, DRTM log, context), tpm2_quote its attest, signature and PCR files.
Goal: <= 1.0x. Also prints the evidence size for a 2-bank, 40-event log.

The platform is the simulator's clean launch with 30 Secure Launch events (40 events in all) on a swtpm
with exactly sha1 and sha256 allocated (swtpm_setup --pcr-banks), the AK made by `sld ak create`.
CPU is the processes' user+system time; sld's includes the daemon's share (from /proc). Run as root:
.venv/bin/python benchmarks/attest.py
"""

from __future__ import annotations

import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _platform import SLD, compile_sld, daemon_config, print_ratios

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sld.sim.builder import build_platform  # noqa: E402
from sld.sim.scenarios import PlatformSpec, Scenario  # noqa: E402
from sld.sim.swtpm import Swtpm, launch  # noqa: E402

RUNS = 21
NONCE = bytes.fromhex("5eed" * 16)
BANKS = ("sha1", "sha256")
SELECTION = "+".join(f"{bank}:17,18,19,20,21,22" for bank in BANKS)
TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def median(cmd: list[str], env: dict[str, str], daemon: int | None = None) -> tuple[float, float]:
    """Medians over RUNS of one run of ``cmd``: wall time, and CPU time (the process's, plus the daemon's)."""
    walls, cpus = [], []
    for _ in range(RUNS):
        before, served = resource.getrusage(resource.RUSAGE_CHILDREN), _cpu(daemon) if daemon else 0.0
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        extra = _cpu(daemon) - served if daemon else 0.0
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime + extra)
    return statistics.median(walls), statistics.median(cpus)


def forty_event_platform(root: Path) -> tuple[Path, Swtpm]:
    spec = PlatformSpec(banks=BANKS, window_events=30)
    platform = build_platform(Scenario("bench-40", "40 events, 2 banks", "verified", 0, spec))
    image = root / "phys.img"
    platform.write_image(image)
    state = root / "tpm"
    state.mkdir()
    subprocess.run(["swtpm_setup", "--tpm2", "--tpmstate", str(state), "--pcr-banks", ",".join(BANKS),
                    "--overwrite"], capture_output=True, check=True)
    tpm = Swtpm.start(state)
    launch(tpm, platform)
    return image, tpm


def daemon(conf: Path, root: Path) -> subprocess.Popen[bytes]:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(root / "notify"))
    notify.settimeout(60)
    proc = subprocess.Popen([*SLD, "daemon", "--config", str(conf)], stderr=subprocess.DEVNULL,
                            env=dict(os.environ, NOTIFY_SOCKET=str(root / "notify")))
    while b"READY=1" not in notify.recv(4096):
        pass
    notify.close()
    return proc


def both(ours: Callable[[], tuple[float, float]], peer: Callable[[], tuple[float, float]]) -> tuple[list[float], ...]:
    """The peer measured before and after sld (the machine is shared), averaged."""
    before = peer()
    mine = ours()
    after = peer()
    return list(mine), [(a + b) / 2 for a, b in zip(before, after, strict=True)]


def main() -> None:
    compile_sld()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        image, tpm = forty_event_platform(root)
        proc = None
        try:
            subprocess.run([*SLD, "ak", "create", "--tcti", tpm.tcti], capture_output=True, check=True)
            conf = daemon_config(root, {"image": str(image), "tcti": tpm.tcti})
            proc = daemon(conf, root)
            out = root / "evidence.json"
            sld = [*SLD, "attest", "--nonce", NONCE.hex(), "--socket", str(root / "control.sock"), "-o", str(out)]
            quote = ["tpm2_quote", "-c", "0x81010002", "-l", SELECTION, "-q", NONCE.hex(), "-m", str(root / "msg"),
                     "-s", str(root / "sig"), "-o", str(root / "pcrs"), "-g", "sha256"]
            env = dict(os.environ, TPM2TOOLS_TCTI=tpm.tcti)
            ours, peer = both(lambda: median(sld, env, proc.pid), lambda: median(quote, env))
            evidence = json.loads(out.read_text())
            size = out.stat().st_size
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=20)
            tpm.stop()
    events = evidence["platform"]["log_events"]
    print(f"medians of {RUNS} runs; evidence of {len(evidence['quotes'])} quotes ({', '.join(evidence['banks'])}) "
          f"and {events} events: {size} bytes ({size / 1024:.1f} KiB)")
    print_ratios(f"tpm2_quote ({SELECTION})", peer, "sld attest via the daemon", ours, 1.0)


if __name__ == "__main__":
    main()
