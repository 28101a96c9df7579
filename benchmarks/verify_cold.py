"""Cold `sld verify --json` (a fresh process) on the simulated clean platform, against the peers an
operator would run for the same reading: txt-stat (registers, over the image bind-mounted on
/dev/mem in a private mount namespace) + tpm2_eventlog (the log) + tpm2_pcrread (the PCRs). Also
`sld verify --json` answered by a running daemon over its control socket. Goals: cold <= 3x, via the
daemon <= 1x the sum of the peers. Run as root: .venv/bin/python benchmarks/verify_cold.py
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _platform import SLD, compile_sld, daemon_config, sim_down, sim_up

RUNS = 15
PCRS = "sha1:17,18,19,20,21,22+sha256:17,18,19,20,21,22"
TXT_STAT = 'mount -t tmpfs none /dev && touch /dev/mem && mount --bind "$0" /dev/mem && exec txt-stat'


def median(cmd: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
            txt_stat = median(["unshare", "-m", "--propagation", "private", "sh", "-c", TXT_STAT, info["image"]])
            eventlog = median(["tpm2_eventlog", str(log)])
            pcrread = median(["tpm2_pcrread", "-T", info["tcti"], PCRS])
            cold = median([*sld, "verify", "--local", "--json", "--source", f"image:{info['image']}", "--tcti",
                           info["tcti"]])
            via = median([*sld, "verify", "--json", "--socket", str(root / "control.sock")])
        finally:
            daemon.terminate()
            daemon.wait()
            sim_down(root)
    peers = txt_stat + eventlog + pcrread
    print(f"medians of {RUNS} runs, simulated clean platform (image + swtpm)")
    print(f"txt-stat {txt_stat * 1000:.1f} ms + tpm2_eventlog {eventlog * 1000:.1f} ms + tpm2_pcrread "
          f"{pcrread * 1000:.1f} ms = {peers * 1000:.1f} ms")
    print(f"sld verify --json, cold process: {cold * 1000:.1f} ms, ratio {cold / peers:.2f} (goal <= 3)")
    print(f"sld verify --json via the daemon: {via * 1000:.1f} ms, ratio {via / peers:.2f} (goal <= 1)")


if __name__ == "__main__":
    main()
