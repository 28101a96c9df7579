"""Cold `sld verify --evidence` (a fresh process of the installed command) against what a verifier runs
without sld for the same evidence: tpm2_checkquote once per quote (signature, nonce, PCR digest) plus
tpm2_eventlog on the DRTM log. Goal: <= 2x. Also prints the evidence size for a 2-bank, 40-event log.

The evidence is real: a swtpm driven through the simulator's launch of a 40-event log (10 SINIT
events, 30 Secure Launch events, sha1 + sha256), one tpm2_quote per bank with an AK tpm2_createak
made (tests/evidence.py lays the file out as docs/evidence.md says). Run: .venv/bin/python
benchmarks/verify_evidence.py
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _platform import SLD, compile_sld

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sld.formats.eventlog import parse_log  # noqa: E402
from sld.formats.tcg import NewEvent, build_crypto_agile  # noqa: E402
from sld.sim.builder import Platform  # noqa: E402
from sld.sim.scenarios import PlatformSpec, Scenario, SimEvent, events_for, sinit_events  # noqa: E402
from sld.sim.swtpm import Swtpm, launch  # noqa: E402
from tests import evidence  # noqa: E402
from tests.tpm2tools import Tools  # noqa: E402

RUNS = 21
NONCE = bytes.fromhex("c0ffee00" * 8)
BANKS = ("sha1", "sha256")
EVENTS = 40  # the SINIT's events, then Secure Launch events up to this many


def median(cmds: list[list[str]]) -> tuple[float, float]:
    """Medians over RUNS of running ``cmds`` one after the other (a verifier's whole job on one evidence):
    wall time, and the CPU time (user + system) the processes used, which a loaded machine disturbs less."""
    walls, cpus = [], []
    for _ in range(RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        for cmd in cmds:
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def forty_event_launch(root: Path) -> tuple[Swtpm, bytes, tuple[SimEvent, ...]]:
    sinit = len(sinit_events(PlatformSpec(banks=BANKS)))
    spec = PlatformSpec(banks=BANKS, window_events=EVENTS - sinit)
    events = tuple(events_for(spec, "v16"))
    log = build_crypto_agile(BANKS, [NewEvent(e.pcr, e.type, e.digests, e.data) for e in events])
    platform = Platform(Scenario("bench-40", "40 events, 2 banks", "verified", 0, spec), "v16", {}, log, events)
    tpm = Swtpm.start(root / "tpm")
    launch(tpm, platform)
    return tpm, log, events


def main() -> None:
    compile_sld()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tpm, log, events = forty_event_launch(root)
        try:
            tools = Tools(tpm.tcti, root / "tools")
            ak = tools.create_ak("rsa")
            ev = evidence.make(tools, ak, log, NONCE, BANKS)
            path = evidence.write(root / "evidence.json", ev)
            size = path.stat().st_size
            # tpm2_eventlog stops at the PCR-255 EVTYPE_PCRMAPPING record ("PCR Index 255 is out of bounds"):
            # it reads the same log without that one record
            (root / "log.bin").write_bytes(build_crypto_agile(BANKS, [NewEvent(e.pcr, e.type, e.digests, e.data)
                                                                      for e in events if e.pcr < 24]))
            quotes = [tools.quote(ak, f"{bank}:{evidence.DRTM}", NONCE, f"peer-{bank}") for bank in BANKS]
        finally:
            tpm.stop()
        sld = [*SLD, "verify", "--evidence", str(path), "--ak", str(ak.pem), "--nonce", NONCE.hex(), "--json"]
        assert subprocess.run(sld, capture_output=True).returncode == 0, "the evidence must verify"
        peers = [["tpm2_checkquote", "-u", str(ak.pem), "-m", str(q.attest), "-s", str(q.signature), "-f",
                  str(q.pcrs), "-g", "sha256", "-q", NONCE.hex()] for q in quotes]
        peers.append(["tpm2_eventlog", str(root / "log.bin")])
        peer_before = median(peers)
        ours = median([sld])
        peer_after = median(peers)  # the machine is shared: the peer is measured before and after sld
    peer = [(a + b) / 2 for a, b in zip(peer_before, peer_after, strict=True)]
    assert len(parse_log(log).events) == EVENTS + 1  # and the Spec ID header record
    print(f"medians of {RUNS} runs; evidence of {len(BANKS)} banks ({', '.join(BANKS)}) and {EVENTS} events: "
          f"{size} bytes ({size / 1024:.1f} KiB)")
    for i, what in enumerate(("wall", "CPU")):
        print(f"{what}: tpm2_checkquote x{len(quotes)} + tpm2_eventlog {peer[i] * 1000:.1f} ms; sld verify --evidence "
              f"--json, cold process {ours[i] * 1000:.1f} ms; ratio {ours[i] / peer[i]:.2f} (goal <= 2)")


if __name__ == "__main__":
    main()
