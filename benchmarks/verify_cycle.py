"""One verification cycle on the simulated clean platform, and the TPM commands it costs.

Prints, in one run:
- TPM commands per verification, counted at the TPM side by a TCP proxy in front of swtpm's data port
  (every TPM command is one request frame; the tss2 swtpm TCTI opens one connection per command);
- the wall time of a verification cycle inside one process (sld.verify with an open Tpm, as the
  daemon runs it) as a ratio to one `tpm2_pcrread` process reading the same 12 PCRs over the same TCTI
  (goal <= 0.5).
Run from the checkout: PYTHONPATH=. .venv/bin/python benchmarks/verify_cycle.py (the relay lives in tests/)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sld.platform.source import open_source
from sld.sim.builder import build_platform
from sld.sim.swtpm import Swtpm, launch
from sld.tpm import Tpm
from sld.verify import verify
from tests.relay import TpmProxy

RUNS = 50
PCRS = "sha1:17,18,19,20,21,22+sha256:17,18,19,20,21,22"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        platform = build_platform("clean")
        image = Path(tmp) / "phys.img"
        platform.write_image(image)
        tpm = Swtpm.start(Path(tmp) / "tpm", banks=platform.scenario.spec.allocated)
        try:
            launch(tpm, platform)
            proxy = TpmProxy(tpm.port)
            tcti = proxy.tcti
            with Tpm(tcti) as dev, open_source(f"image:{image}") as source:
                dev.banks()  # once per session, as the daemon does
                start = proxy.commands
                assert verify(source, dev, mode="validate").result == "verified"
                per_cycle = proxy.commands - start
                cycles = []
                for _ in range(RUNS):
                    t0 = time.perf_counter()
                    verify(source, dev, mode="validate")
                    cycles.append(time.perf_counter() - t0)
            reads = []
            for _ in range(RUNS):
                t0 = time.perf_counter()
                subprocess.run(["tpm2_pcrread", "-T", tcti, PCRS], check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                reads.append(time.perf_counter() - t0)
        finally:
            tpm.stop()
    ours, theirs = statistics.median(cycles), statistics.median(reads)
    print(f"TPM commands per verification (counted at the TPM side): {per_cycle} (goal: 2 PCR reads)")
    print(f"sld verification cycle in one process: {ours * 1000:.2f} ms (median of {RUNS})")
    print(f"one tpm2_pcrread process, same 12 PCRs, same TCTI: {theirs * 1000:.2f} ms (median of {RUNS})")
    print(f"ratio sld cycle / tpm2_pcrread: {ours / theirs:.2f} (goal <= 0.5)")


if __name__ == "__main__":
    sys.exit(main())
