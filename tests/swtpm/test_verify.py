"""`sld verify` end to end: the simulator's image + a real swtpm in the state each launch leaves."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sld.replay import DRTM_PCRS
from sld.sim.scenarios import SCENARIOS
from sld.tpm import Tpm
from tests.swtpm.conftest import Sim

BANKS = ("sha1", "sha256")


def pcrs(tcti: str) -> dict[str, dict[int, bytes]]:
    with Tpm(tcti) as tpm:
        return tpm.read_pcrs(DRTM_PCRS, BANKS)


def manifest_pcrs(sim: Sim) -> dict[str, dict[int, str]]:
    manifest = json.loads(Path(f"{sim.info['image']}.json").read_text())
    return {b: {int(p): v for p, v in manifest["expected_pcrs"][b].items()} for b in BANKS}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_scenario_gets_its_verdict_and_exit_code(sim: Sim, scenario) -> None:
    sim.up(scenario.name)
    run = sim.verify("--locality", "2")
    assert run.returncode == scenario.exit_code, run.stdout + run.stderr
    verdict = json.loads(run.stdout)
    assert verdict["schema"] == 1 and verdict["kind"] == "verdict"
    assert verdict["result"] == scenario.verdict and verdict["exit_code"] == scenario.exit_code
    assert "Traceback" not in run.stderr


def test_validate_mode_reports_unextended_events_and_extends_nothing(sim: Sim) -> None:
    sim.up("unextended")
    before = pcrs(sim.info["tcti"])
    run = sim.verify("--locality", "2", "--mode", "validate")
    assert run.returncode == 1
    check = next(c for c in json.loads(run.stdout)["checks"] if c["id"] == "pcr.match")
    assert "logged events not extended" in check["detail"] and "--mode perform" in check["detail"]
    assert pcrs(sim.info["tcti"]) == before


def test_locality_zero_fails_cleanly_and_extends_nothing(sim: Sim) -> None:
    sim.up("partial-extend")
    before = pcrs(sim.info["tcti"])
    run = sim.verify()  # the swtpm TCTI connects at locality 0
    assert run.returncode == 1 and "Traceback" not in run.stderr
    verdict = json.loads(run.stdout)
    extend = next(c for c in verdict["checks"] if c["id"] == "tpm.extend")
    assert extend["status"] == "fail" and re.search(r"PCR1[78] needs \(2-4\)", extend["detail"])
    assert verdict["extended"] == [] and pcrs(sim.info["tcti"]) == before


KILL_AFTER = """
import os, signal, sys
import sld.tpm
from sld.cli import main
limit, done = int(os.environ["SLD_TEST_KILL_AFTER"]), []
extend = sld.tpm.Tpm.extend
def killing_extend(self, pcr, digests):
    extend(self, pcr, digests)
    done.append(pcr)
    if len(done) == limit:
        os.kill(os.getpid(), signal.SIGKILL)
sld.tpm.Tpm.extend = killing_extend
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_after_each_extend_then_rerun_extends_each_event_exactly_once(sim: Sim) -> None:
    """Fault injection in a child process: SIGKILL right after its k-th TPM2_PCR_Extend, for every k."""
    info = sim.up("partial-extend")
    remaining = None
    k = 1
    while remaining is None or k <= remaining:
        info = sim.up("partial-extend")
        expected = manifest_pcrs(sim)
        args = ["verify", "--source", f"image:{info['image']}", "--tcti", info["tcti"], "--locality", "2", "--json"]
        env = dict(os.environ, SLD_TEST_KILL_AFTER=str(k))
        killed = subprocess.run([sys.executable, "-c", KILL_AFTER, *args], capture_output=True, text=True, env=env)
        assert killed.returncode == -9, killed.stdout + killed.stderr
        rerun = sim.verify("--locality", "2")
        verdict = json.loads(rerun.stdout)
        assert rerun.returncode == 0, rerun.stdout
        if remaining is None:
            remaining = k + len(verdict["extended"])
            assert remaining >= 16
        assert len(verdict["extended"]) == remaining - k  # the rerun did only what the killed run had not
        actual = pcrs(info["tcti"])
        assert {b: {p: actual[b][p].hex() for p in expected[b]} for b in BANKS} == expected
        k += 1


def _policy(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return str(path)


def test_policy_of_known_good_values_and_required_digests(sim: Sim, tmp_path: Path) -> None:
    import hashlib

    sim.up("clean")
    expected = manifest_pcrs(sim)
    mle = hashlib.sha256(b"sld-sim" + b"mle-kernel").hexdigest()  # the simulated kernel's MLE_HASH
    good = _policy(tmp_path, f'[pcrs.sha256]\n17 = "{expected["sha256"][17]}"\n'
                             f'[[events]]\npcr = 17\ntype = 0x404\nsha256 = "{mle}"\n')
    run = sim.verify("--locality", "2", "--policy", good)
    check = next(c for c in json.loads(run.stdout)["checks"] if c["id"] == "policy.match")
    assert run.returncode == 0 and check["status"] == "pass"

    other = hashlib.sha256(b"another kernel").hexdigest()
    bad = _policy(tmp_path, f'[pcrs.sha256]\n17 = "{"00" * 32}"\n[[events]]\ntype = 0x404\nsha256 = "{other}"\n')
    run = sim.verify("--locality", "2", "--policy", bad)
    verdict = json.loads(run.stdout)
    check = next(c for c in verdict["checks"] if c["id"] == "policy.match")
    assert run.returncode == 1 and verdict["result"] == "failed" and len(check["evidence"]["findings"]) == 2


def test_malformed_policy_is_a_usage_error(sim: Sim, tmp_path: Path) -> None:
    sim.up("clean")
    run = sim.verify("--policy", _policy(tmp_path, '[pcrs.sha256]\n17 = "abc"\n'))
    assert run.returncode == 2 and "pcrs.sha256.17" in run.stderr and "Traceback" not in run.stderr


def test_the_simulator_allocates_exactly_the_logs_banks(sim: Sim) -> None:
    """`sld sim up` manufactures the swtpm with the scenario's banks (swtpm_setup --pcr-banks), not libtpms' four."""
    info = sim.up("clean")
    with Tpm(info["tcti"]) as tpm:
        assert tpm.banks() == BANKS
    verdict = json.loads(sim.verify("--locality", "2").stdout)
    check = next(c for c in verdict["checks"] if c["id"] == "pcr.banks")
    assert check["status"] == "pass" and check["evidence"]["allocated"] == list(BANKS) == verdict["banks"]


def test_an_allocated_bank_the_log_does_not_cover_fails_and_is_listed(sim: Sim) -> None:
    """Issue 17: sha384 active, log sha1/sha256: not "every bank", but pcr.banks failed and rows not-covered."""
    info = sim.up("uncovered-bank")
    assert info["tpm_banks"] == ["sha1", "sha256", "sha384"] and info["verdict"] == "failed"
    manifest = json.loads(Path(f"{info['image']}.json").read_text())
    assert manifest["tpm_banks"] == info["tpm_banks"] and manifest["banks"] == list(BANKS)
    with Tpm(info["tcti"]) as tpm:
        assert tpm.banks() == ("sha1", "sha256", "sha384")
    run = sim.verify("--locality", "2")
    verdict = json.loads(run.stdout)
    assert run.returncode == 1 and verdict["result"] == "failed", run.stdout
    failed = [c for c in verdict["checks"] if c["status"] == "fail"]
    assert [c["id"] for c in failed] == ["pcr.banks"]
    assert failed[0]["evidence"]["uncovered"] == ["sha384"] and failed[0]["evidence"]["unallocated"] == []
    assert "sha384 is allocated in the TPM but not covered by the log" in verdict["summary"]
    assert all(p["uncovered"] == ["sha384"] for p in verdict["pcrs"]) and verdict["banks"] == list(BANKS)
    assert all(p["banks"] == {"sha1": "match", "sha256": "match", "sha384": "not-covered"} for p in verdict["pcrs"])
    assert "every bank" not in run.stdout
    text = sld_text(sim)
    assert "every bank" not in text
    assert re.search(r"^PCR17\s+sha384\s+not-covered\s+not covered by the log", text, re.M), text
    assert re.search(r"^fail\s+log covers exactly the allocated banks\s+sha384 is allocated", text, re.M), text


def sld_text(sim: Sim) -> str:
    run = subprocess.run([sys.executable, "-m", "sld.cli", "verify", "--source", f"image:{sim.info['image']}",
                          "--tcti", sim.info["tcti"], "--locality", "2"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    return run.stdout


def test_a_cold_verification_without_a_policy_imports_only_what_it_uses(sim: Sim) -> None:
    """Issue 15: a cold `sld verify --local` with no policy and nothing to extend verifies without the
    appraisal code, the extend lock, the TOML parser (when no configuration file exists), tarfile,
    tempfile, pathlib or argparse (its options are read from their declaration): each is imported where
    it is used, and each costs a cold process milliseconds."""
    from sld.paths import DEFAULT_CONFIG

    sim.up("clean")
    unused = {"sld.appraisal", "sld.lock", "tarfile", "tempfile", "pathlib", "ipaddress", "sld.sim", "argparse"}
    if not os.path.exists(DEFAULT_CONFIG):
        unused.add("tomllib")
    code = (f"import sys\nfrom sld.cli import main\ncode = main(sys.argv[1:])\n"
            f"print(code, *sorted(m for m in sys.modules if m in {sorted(unused)!r}), file=sys.stderr)")
    run = subprocess.run([sys.executable, "-c", code, "verify", "--local", "--json", "--source",
                          f"image:{sim.info['image']}", "--tcti", sim.info["tcti"], "--locality", "2"],
                         capture_output=True, text=True, timeout=60)
    assert json.loads(run.stdout)["result"] == "verified", run.stderr
    assert run.stderr.splitlines()[-1] == "0", run.stderr
