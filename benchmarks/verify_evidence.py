"""Cold `sld verify --evidence` (a fresh process of the installed command) against what a verifier runs
without sld for the same evidence: tpm2_checkquote once per quote (signature, nonce, PCR digest) plus
tpm2_eventlog on the DRTM log. Goal: <= 2x. Also prints the evidence size for a 2-bank, 40-event log.

The evidence is real and sld's own: a swtpm with the sha1 and sha256 banks allocated, driven through
the simulator's launch of a 40-event log (the SINIT's events, then Secure Launch events), an AK made
by `sld ak create` and the evidence written by `sld attest` from a securityfs view holding that log;
tpm2_checkquote reads each quote as files written from the evidence. Run: .venv/bin/python
benchmarks/verify_evidence.py
"""

from __future__ import annotations

import base64
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _platform import SLD, compile_sld

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sld.formats.eventlog import parse_log  # noqa: E402
from sld.formats.names import ALG_ID  # noqa: E402
from sld.formats.tcg import NewEvent, build_crypto_agile  # noqa: E402
from sld.sim.builder import Platform, build_platform  # noqa: E402
from sld.sim.scenarios import PlatformSpec, Scenario, SimEvent, events_for, sinit_events  # noqa: E402
from sld.sim.swtpm import Swtpm, launch  # noqa: E402
from sld.vocab import Result  # noqa: E402
from tests.tpm2tools import pcr_blob  # noqa: E402

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


def forty_event_host(root: Path) -> tuple[Swtpm, Path, bytes, tuple[SimEvent, ...]]:
    """A TPM with the log's two banks allocated (swtpm_setup), driven through the launch of a 40-event log,
    and the securityfs view a Secure Launch kernel exports (the clean scenario's registers, this log)."""
    sinit = len(sinit_events(PlatformSpec(banks=BANKS)))
    spec = PlatformSpec(banks=BANKS, window_events=EVENTS - sinit)
    events = tuple(events_for(spec, "v16"))
    log = build_crypto_agile(BANKS, [NewEvent(e.pcr, e.type, e.digests, e.data) for e in events])
    platform = Platform(Scenario("bench-40", "40 events, 2 banks", Result.VERIFIED, spec), "v16", {}, log, events)
    (root / "tpm").mkdir()
    subprocess.run(["swtpm_setup", "--tpm2", "--tpmstate", str(root / "tpm"), "--pcr-banks", ",".join(BANKS)],
                   capture_output=True, check=True, timeout=120)
    tpm = Swtpm.start(root / "tpm")
    launch(tpm, platform)
    build_platform("clean").write_securityfs(root / "securityfs")
    (root / "securityfs" / "eventlog").write_bytes(log)
    return tpm, root / "securityfs", log, events


def quote_files(root: Path, quote: dict[str, Any]) -> list[str]:
    """One quote of the evidence as tpm2_checkquote reads it: -m attest -s signature -f PCR blob."""
    files = [root / f"{quote['bank']}.{ext}" for ext in ("attest", "sig", "pcrs")]
    files[0].write_bytes(base64.b64decode(quote["attest"]))
    files[1].write_bytes(base64.b64decode(quote["signature"]))
    files[2].write_bytes(pcr_blob(ALG_ID[quote["bank"]], {int(p): bytes.fromhex(v) for p, v in quote["pcrs"].items()}))
    return ["-m", str(files[0]), "-s", str(files[1]), "-f", str(files[2])]


def main() -> None:
    compile_sld()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tpm, securityfs, log, events = forty_event_host(root)
        try:
            made = subprocess.run([*SLD, "ak", "create", "--tcti", tpm.tcti, "--json"], capture_output=True,
                                  text=True, check=True)
            pem = root / "ak.pem"
            pem.write_text(json.loads(made.stdout)["ak"]["pem"])
            path = root / "evidence.json"
            subprocess.run([*SLD, "attest", "--nonce", NONCE.hex(), "--source", f"securityfs:{securityfs}", "--tcti",
                            tpm.tcti, "-o", str(path)], capture_output=True, check=True)
        finally:
            tpm.stop()
        size = path.stat().st_size
        ev = json.loads(path.read_text())
        # tpm2_eventlog stops at the PCR-255 EVTYPE_PCRMAPPING record ("PCR Index 255 is out of bounds"):
        # it reads the same log without that one record
        (root / "log.bin").write_bytes(build_crypto_agile(BANKS, [NewEvent(e.pcr, e.type, e.digests, e.data)
                                                                  for e in events if e.pcr < 24]))
        sld = [*SLD, "verify", "--evidence", str(path), "--ak", str(pem), "--nonce", NONCE.hex(), "--json"]
        assert subprocess.run(sld, capture_output=True).returncode == 0, "the evidence must verify"
        peers = [["tpm2_checkquote", "-u", str(pem), *quote_files(root, q), "-g", "sha256", "-q", NONCE.hex()]
                 for q in ev["quotes"]]
        peers.append(["tpm2_eventlog", str(root / "log.bin")])
        peer_before = median(peers)
        ours = median([sld])
        peer_after = median(peers)  # the machine is shared: the peer is measured before and after sld
    peer = [(a + b) / 2 for a, b in zip(peer_before, peer_after, strict=True)]
    assert ev["banks"] == list(BANKS) and len(parse_log(log).events) == EVENTS + 1  # and the Spec ID header
    print(f"medians of {RUNS} runs; evidence (sld attest) of {len(BANKS)} banks ({', '.join(BANKS)}) and {EVENTS} "
          f"events: {size} bytes ({size / 1024:.1f} KiB)")
    for i, what in enumerate(("wall", "CPU")):
        print(f"{what}: tpm2_checkquote x{len(ev['quotes'])} + tpm2_eventlog {peer[i] * 1000:.1f} ms; sld verify "
              f"--evidence --json, cold process {ours[i] * 1000:.1f} ms; ratio {ours[i] / peer[i]:.2f} (goal <= 2)")


if __name__ == "__main__":
    main()
