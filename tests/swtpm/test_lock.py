"""Two extenders racing on one swtpm never double-extend, whatever namespaces and TCTI spellings they use.

The reproduction of issue 17: two `sld verify` runs resuming the same partial launch at the same
moment, each with its own lock path, double-extended in 9 of 15 rounds. Here one racer runs in a
mount namespace with its own /run (what PrivateTmp, PrivateMounts or a second lock path give it) and
spells the TCTI differently; both are released from a common start time after their imports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.swtpm.conftest import Sim
from tests.swtpm.test_verify import BANKS, manifest_pcrs, pcrs

ROUNDS = 15
RACER = """
import sys, time
import sld.commands.verify, sld.tpm, sld.verify  # imported before the start, so both extend at once
from sld.cli import main
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
sys.exit(main(sys.argv[2:]))
"""
OWN_RUN = 'mount -t tmpfs sld-race /run && exec "$@"'

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="a private mount namespace needs root"),
              pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is absent")]


def test_racers_in_split_namespaces_extend_each_event_exactly_once(sim: Sim) -> None:
    doubled = []
    for round_ in range(ROUNDS):
        info = sim.up("partial-extend")
        expected = manifest_pcrs(sim)
        port = info["tcti"].rsplit("port=", 1)[1]
        start = f"{time.time() + 1.5:.3f}"
        other_spelling = f"swtpm:host=localhost,port={port}"
        common = ["verify", "--source", f"image:{info['image']}", "--locality", "2", "--json", "--mode", "perform"]
        racers = [
            subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", OWN_RUN, "sh",
                              sys.executable, "-c", RACER, start, *common, "--tcti", other_spelling],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
            subprocess.Popen([sys.executable, "-c", RACER, start, *common, "--tcti", info["tcti"]],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        ]
        outputs = [r.communicate(timeout=120) for r in racers]
        verdicts = [json.loads(out) for out, _ in outputs]
        for racer, verdict, (out, err) in zip(racers, verdicts, outputs, strict=True):
            assert racer.returncode == 0 or _locality_glitch(verdict), out + err
        finish = sim.verify("--locality", "2", "--mode", "perform")  # completes what a locality glitch left
        assert finish.returncode == 0, finish.stdout + finish.stderr
        extended = [v["extended"] for v in verdicts] + [json.loads(finish.stdout)["extended"]]
        flat = [i for run in extended for i in run]
        now = pcrs(info["tcti"])
        if {b: {p: now[b][p].hex() for p in expected[b]} for b in BANKS} != expected or len(flat) != len(set(flat)):
            doubled.append((round_, extended))
        assert flat, "nobody had anything to extend: the scenario changed"
    assert doubled == []


def _locality_glitch(verdict: dict[str, Any]) -> bool:
    """swtpm keeps one locality for all its clients: a racer connecting mid-extend can reset it to 0, and
    the extender stops with TPM_RC_LOCALITY (recoverable: nothing is extended twice). Nothing else is."""
    extend = next((c for c in verdict["checks"] if c["id"] == "tpm.extend"), {})
    return extend.get("evidence", {}).get("kind") == "locality"
