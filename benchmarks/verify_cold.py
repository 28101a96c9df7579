"""Cold `sld verify --json` (a fresh process) on the simulated clean platform, against the peers an
operator would run for the same reading: txt-stat (registers, over the image bind-mounted on
/dev/mem in a private mount namespace) + tpm2_eventlog (the log) + tpm2_pcrread (the PCRs). Also
`sld verify --json` answered by a running daemon over its control socket. Goals (issue 15): cold <= 4x,
via the daemon <= 1x the sum of the peers. Also printed: what an interpreter importing, layer by
layer, what the cold process needs costs before it verifies anything (LAYERS), the floor under the
goal. Each command's best of RUNS is its time (on a shared machine the others' load only ever adds
to a run), its median printed beside it. Run as root:
.venv/bin/python benchmarks/verify_cold.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _platform import SLD, compile_sld, daemon_config, sim_down, sim_up

RUNS = 21
# What a cold process pays before it verifies anything, cumulative: an interpreter started as bin/sld
# starts (the collector off, os._exit at the end) that imports each layer on top of the one before.
LAYERS = (
    ("the bare interpreter", "pass"),
    ("+ the TPM binding (tpm2-pytss's cffi module and the libtss2 libraries it links)",
     "import sld.tss; sld.tss.binding()"),
    ("+ construct (with hashlib's OpenSSL digests and construct.debug's pdb)", "import construct"),
    ("+ every other module a cold local verification imports", "import sld.commands.verify, sld.verify, sld.tpm, "
     "sld.report, sld.config"),
)
PCRS = "sha1:17,18,19,20,21,22+sha256:17,18,19,20,21,22"
TXT_STAT = 'mount -t tmpfs none /dev && touch /dev/mem && mount --bind "$0" /dev/mem && exec txt-stat'


def timed(cmd: list[str]) -> tuple[float, float]:
    """(best, median) wall time of RUNS runs of ``cmd``, its output discarded."""
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    compile_sld()
    sld = SLD
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        info = sim_up(root)
        log = root / "eventlog.bin"
        log.write_bytes((Path(info["securityfs"]) / "eventlog").read_bytes())
        conf = daemon_config(root, info)
        daemon = subprocess.Popen([*sld, "daemon", "--config", str(conf)], stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.5)
            txt_stat = timed(["unshare", "-m", "--propagation", "private", "sh", "-c", TXT_STAT, info["image"]])
            eventlog = timed(["tpm2_eventlog", str(log)])
            pcrread = timed(["tpm2_pcrread", "-T", info["tcti"], PCRS])
            cold = timed([*sld, "verify", "--local", "--json", "--source", f"image:{info['image']}", "--tcti",
                           info["tcti"]])
            via = timed([*sld, "verify", "--json", "--socket", str(root / "control.sock")])
            layers = [timed([sys.executable, "-c", "import gc; gc.disable(); "
                             + "; ".join(code for _, code in LAYERS[:i + 1]) + "; import os; os._exit(0)"])
                      for i in range(len(LAYERS))]
        finally:
            daemon.terminate()
            daemon.wait()
            sim_down(root)
    peers = [txt_stat[i] + eventlog[i] + pcrread[i] for i in (0, 1)]
    print(f"best of {RUNS} runs (median), simulated clean platform (image + swtpm)")
    print(f"txt-stat {ms(txt_stat)} + tpm2_eventlog {ms(eventlog)} + tpm2_pcrread {ms(pcrread)} = {ms(peers)}")
    print(f"sld verify --json, cold process: {ms(cold)}, ratio {cold[0] / peers[0]:.2f} "
          f"({cold[1] / peers[1]:.2f}) (goal <= 4)")
    print(f"sld verify --json via the daemon: {ms(via)}, ratio {via[0] / peers[0]:.2f} "
          f"({via[1] / peers[1]:.2f}) (goal <= 1)")
    print("what a cold process pays before verifying: an interpreter with")
    for (what, _), took in zip(LAYERS, layers, strict=True):
        print(f"  {what}: {ms(took)}, {took[0] / peers[0]:.2f}x the peers")


def ms(best_median: tuple[float, float] | list[float]) -> str:
    return f"{best_median[0] * 1000:.1f} ms ({best_median[1] * 1000:.1f})"


if __name__ == "__main__":
    main()
