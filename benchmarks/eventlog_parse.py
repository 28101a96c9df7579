"""``sld inspect log --file X --pcrs [--json]`` vs ``tpm2_eventlog X``: whole processes, same output work.

Each prints every event of a 100,000-event sha1+sha256 crypto-agile log and the PCR values it replays
to, into a file (read back and checked: the JSON parses, the YAML names the last event). The installed
``sld`` command runs byte-compiled, as a package install leaves it. The runs are interleaved and each
command's best of RUNS is taken (the run least disturbed by the rest of the machine, alike for both; the
load average is printed beside it). Prints both ratios sld / tpm2_eventlog (goal <= 0.33 each), wall and
CPU (user + system), measured in the same run, then the peak RSS of
``sld inspect log --json`` on 100,000 and 1,000,000 events (goal: grows by less than 2x).

Run: .venv/bin/python benchmarks/eventlog_parse.py
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _platform import SLD, compile_sld

from sld.formats.tcg import NewEvent, build_crypto_agile

EVENTS = 100_000
RUNS = 7


def make_log(path: Path, times: int = 1) -> None:
    """EVENTS records (PCR17/18, SLAUNCH, sha1+sha256 of their data), ``times`` over after one header."""
    banks = ("sha1", "sha256")
    events = []
    for i in range(EVENTS):
        data = b"event %d" % i
        events.append(NewEvent(17 + i % 2, 0x502, {b: hashlib.new(b, data).digest() for b in banks}, data))
    log = build_crypto_agile(banks, events)
    header = len(build_crypto_agile(banks, []))
    path.write_bytes(log + log[header:] * (times - 1))


def seconds(cmd: list[str], out: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of ``cmd`` writing its stdout into ``out``: on a loaded machine
    the CPU time is the steadier of the two."""
    with out.open("wb") as f:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=f)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{cmd} failed")
    return wall, usage.ru_utime + usage.ru_stime


def peak_rss_kib(cmd: list[str], out: Path) -> int:
    """Peak RSS of ``cmd`` as GNU time (Debian ``time``) reports it: a process forked from this one would
    count this one's pages (its fork copy) in its own high-water mark."""
    report = out.with_suffix(".rss")
    with out.open("wb") as f:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), *cmd], stdout=f, check=True)
    return int(report.read_text().split()[-1])


def main() -> None:
    compile_sld()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log = root / "log.bin"
        make_log(log)
        commands = {
            "tpm2_eventlog": ["tpm2_eventlog", str(log)],
            "sld --pcrs --json": [*SLD, "inspect", "log", "--file", str(log), "--pcrs", "--json"],
            "sld --pcrs": [*SLD, "inspect", "log", "--file", str(log), "--pcrs"],
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(RUNS):  # interleaved, so that load on the machine falls on all alike
            for name, cmd in commands.items():
                times[name].append(seconds(cmd, root / "out"))
                check(name, root / "out")
        rss = {}
        for n in (1, 10):
            make_log(log, n)
            rss[n * EVENTS] = peak_rss_kib(commands["sld --pcrs --json"], root / "out")
            check("sld --pcrs --json", root / "out", n * EVENTS)
    wall = {name: min(w for w, _ in t) for name, t in times.items()}
    cpu = {name: min(c for _, c in t) for name, t in times.items()}
    print(f"events: {EVENTS}, log: sha1+sha256 crypto-agile, best of {RUNS} whole-process runs, output to a file "
          f"(load average {load:.2f} before)")
    for name in commands:
        peer_wall, peer_cpu = wall["tpm2_eventlog"], cpu["tpm2_eventlog"]
        ratios = "" if name == "tpm2_eventlog" else (f"  ratio sld/tpm2_eventlog: {wall[name] / peer_wall:.2f}"
                                                     f" (goal <= 0.33), CPU {cpu[name] / peer_cpu:.2f}")
        print(f"{name}: {wall[name]:.3f} s (CPU {cpu[name]:.3f} s){ratios}")
    small, large = rss[EVENTS], rss[10 * EVENTS]
    print(f"peak RSS of sld inspect log --pcrs --json: {small / 1024:.1f} MiB at {EVENTS} events, "
          f"{large / 1024:.1f} MiB at {10 * EVENTS} events: {large / small:.2f}x (goal < 2x)")


def check(name: str, out: Path, events: int = EVENTS) -> None:
    """The output is what was asked for: every event (and the PCRs) is there."""
    if name == "tpm2_eventlog":
        tail = out.read_bytes()[-4096:]
        assert b"pcrs:" in tail and f"EventNum: {events}".encode() in out.read_bytes()[-(1 << 16):], name
    elif "--json" in name and events == EVENTS:
        with out.open() as f:
            doc = json.load(f)
        assert len(doc["events"]) == events + 1 and doc["pcrs"]["sha256"]["17"], name
    elif "--json" in name:  # a million: too large to load here; its last event and the PCRs are there
        tail = out.read_bytes()[-(1 << 16):]
        assert f'"index": {events},'.encode() in tail and b'"pcrs"' in tail and tail.endswith(b"}\n"), name
    else:
        assert out.read_bytes().count(b"\n") > events, name


if __name__ == "__main__":
    main()
