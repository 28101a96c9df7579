"""The daemon's footprint and scrape throughput against node_exporter, measured in the same run.

Prints sld daemon RSS and CPU while idle (between verifications, default 60 s: SLD_IDLE_SECONDS), the same
for node_exporter, and scrape throughput (scrapes/s over 16 connections for 5 s, from Debian's ``wrk``
when installed, else urllib threads) for both, with ratios sld / node_exporter and the load
generator's own CPU use, which shows whether the client rather than the server was the limit; and
what sld's RSS is made of: the same daemon with ``[metrics] enabled = false``, and an interpreter that
imports, step by step, what the daemon needs (LAYERS), so the floor under the goal is printed too.
Run: .venv/bin/python benchmarks/daemon_footprint.py
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from _platform import SLD, compile_sld, daemon_config, sim_down, sim_up

from sld.sim.swtpm import free_port_pair

IDLE = float(os.environ.get("SLD_IDLE_SECONDS", "60"))
CLIENTS, LOAD_SECONDS, WRK_THREADS = 16, 5.0, 1
TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_http(url: str) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def throughput(url: str) -> tuple[float, float]:
    """Scrapes/s and the load generator's own CPU use (% of the cores it may use): ``wrk`` (Debian) when
    installed, else CLIENTS threads of urllib. A client near 100 % would measure itself, not the server."""
    if shutil.which("wrk"):
        before, start = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)), time.monotonic()
        out = subprocess.run(["wrk", f"-t{WRK_THREADS}", f"-c{CLIENTS}", f"-d{LOAD_SECONDS:g}s", url],
                             capture_output=True, text=True, check=True).stdout
        used = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - before  # wrk's only: the servers run on
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        return rate, used / (time.monotonic() - start) / WRK_THREADS * 100
    count, stop = [0], time.monotonic() + LOAD_SECONDS
    lock = threading.Lock()
    before = _cpu(resource.getrusage(resource.RUSAGE_SELF))

    def client() -> None:
        while time.monotonic() < stop:
            urllib.request.urlopen(url, timeout=5).read()
            with lock:
                count[0] += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count[0] / LOAD_SECONDS, (_cpu(resource.getrusage(resource.RUSAGE_SELF)) - before) / LOAD_SECONDS * 100


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def measure(pid: int, url: str) -> tuple[int, float, tuple[float, float]]:
    wait_http(url)
    time.sleep(1)
    cpu0 = cpu_seconds(pid)
    time.sleep(IDLE)
    idle_cpu = (cpu_seconds(pid) - cpu0) / IDLE * 100
    return rss_kib(pid), idle_cpu, throughput(url)


# What an interpreter holds after each step towards the daemon, cumulative: each line imports what the
# one before did, and more (the TPM binding is loaded as sld.tss loads it, without the tpm2_pytss package).
LAYERS = (
    ("the bare interpreter", "pass"),
    ("+ the TPM binding (tpm2-pytss's cffi module and the libtss2 libraries it links)",
     "import sld.tss; sld.tss.binding()"),
    ("+ construct (with hashlib's OpenSSL digests and construct.debug's pdb)", "import construct"),
    ("+ the rest of the verification pipeline (sld.verify, sld.tpm)", "import sld.verify, sld.tpm"),
    ("+ the standard library's HTTP and TLS server modules sld's metrics listener is built on",
     "import ssl, socketserver, wsgiref.simple_server"),
    ("+ prometheus-client (and the urllib and email modules its exposition imports)", "import prometheus_client"),
    ("+ the daemon's own modules (command line, configuration, control socket, service)",
     "import sld.cli, sld.config, sld.service.daemon, sld.service.control, sld.service.http, sld.service.metrics"),
)


def layer_rss(code: str) -> int:
    """RSS (KiB) of an interpreter that ran ``code`` and waits."""
    proc = subprocess.Popen([sys.executable, "-c", f"{code}\nimport sys, time\nprint(flush=True)\ntime.sleep(60)"],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        return rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait()


def floors(root: Path, info: dict[str, Any]) -> tuple[list[int], int]:
    """RSS (KiB) of the interpreter at each of LAYERS, and of the daemon with ``[metrics] enabled = false``
    once it has verified: what the figure above is made of, measured in the same run."""
    from sld.errors import SldError
    from sld.service.control import request

    layers = [layer_rss("; ".join(code for _, code in LAYERS[:i + 1])) for i in range(len(LAYERS))]
    daemon = subprocess.Popen([*SLD, "daemon", "--config", str(daemon_config(root, info))], stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                if request(str(root / "control.sock"), {"cmd": "status"})["state"] != "starting":
                    break
            except SldError:
                pass
            time.sleep(0.1)
        time.sleep(1)
        return layers, rss_kib(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait()


def main() -> None:
    compile_sld()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        info = sim_up(root)
        port, ne_port = free_port_pair(), free_port_pair()
        conf = daemon_config(root, info, port)
        daemon = subprocess.Popen([*SLD, "daemon", "--config", str(conf)], stderr=subprocess.DEVNULL)
        node = subprocess.Popen(["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{ne_port}"],
                                stderr=subprocess.DEVNULL)
        try:
            ours = measure(daemon.pid, f"http://127.0.0.1:{port}/metrics")
            theirs = measure(node.pid, f"http://127.0.0.1:{ne_port}/metrics")
        finally:
            daemon.terminate()
            node.terminate()
            daemon.wait()
            node.wait()
        try:
            layers, unserved = floors(root, info)
        finally:
            sim_down(root)
    print(f"idle window {IDLE:g} s (verification interval 60 s), {CLIENTS} scrape clients for {LOAD_SECONDS:g} s")
    print(f"RSS: sld {ours[0] / 1024:.1f} MiB, node_exporter {theirs[0] / 1024:.1f} MiB, "
          f"ratio {ours[0] / theirs[0]:.2f} (goal <= 1.5)")
    print(f"  of which: the daemon without [metrics] {unserved / 1024:.1f} MiB, so serving metrics "
          f"(prometheus-client and the HTTP/TLS stack) {(ours[0] - unserved) / 1024:.1f} MiB; an interpreter with")
    for (what, _), rss in zip(LAYERS, layers, strict=True):
        print(f"    {what}: {rss / 1024:.1f} MiB ({rss / theirs[0]:.2f}x node_exporter)")
    print(f"idle CPU: sld {ours[1]:.3f} %, node_exporter {theirs[1]:.3f} %")
    client = "wrk" if shutil.which("wrk") else "urllib threads"
    print(f"scrapes/s ({client}, {CLIENTS} connections): sld {ours[2][0]:.0f}, node_exporter {theirs[2][0]:.0f}, "
          f"ratio {ours[2][0] / theirs[2][0]:.2f} (goal >= 4)")
    busiest = max(ours[2][1], theirs[2][1])
    verdict = "not the bottleneck" if busiest < 80 else "SATURATED: the ratio measures the client"
    print(f"load generator CPU: {ours[2][1]:.0f} % against sld, {theirs[2][1]:.0f} % against node_exporter "
          f"(of the core(s) it may use): {verdict}")


if __name__ == "__main__":
    main()
