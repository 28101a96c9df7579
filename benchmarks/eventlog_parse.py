"""Parse + replay of a 100,000-event sha1+sha256 crypto-agile log, whole process: sld vs tpm2_eventlog.

Prints both medians and the ratio sld / tpm2_eventlog (goal <= 0.33). Run: .venv/bin/python benchmarks/eventlog_parse.py
"""

from __future__ import annotations

import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _platform import compile_sld

from sld.formats.tcg import NewEvent, build_crypto_agile

EVENTS = 100_000
RUNS = 5
SLD = "import sys; from sld.formats.eventlog import parse_log; from sld.replay import replay; " \
      "replay(parse_log(open(sys.argv[1], 'rb').read()))"


def make_log(path: Path) -> None:
    banks = ("sha1", "sha256")
    events = []
    for i in range(EVENTS):
        data = b"event %d" % i
        events.append(NewEvent(17 + i % 2, 0x502, {b: hashlib.new(b, data).digest() for b in banks}, data))
    path.write_bytes(build_crypto_agile(banks, events))


def median_seconds(cmd: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    compile_sld()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.bin"
        make_log(log)
        theirs = median_seconds(["tpm2_eventlog", str(log)])
        ours = median_seconds([sys.executable, "-c", SLD, str(log)])
    print(f"events: {EVENTS}, log: sha1+sha256 crypto-agile, median of {RUNS} whole-process runs")
    print(f"tpm2_eventlog: {theirs:.3f} s")
    print(f"sld parse+replay: {ours:.3f} s")
    print(f"ratio sld/tpm2_eventlog: {ours / theirs:.2f} (goal <= 0.33)")


if __name__ == "__main__":
    main()
