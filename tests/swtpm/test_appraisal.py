"""Appraisal end to end: a policy created on the simulated ``clean`` host (image + real swtpm), then every
scenario verified with it and without it, as its manifest says; downgrades remembered in a state directory.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sld.sim.scenarios import SCENARIOS, Scenario
from tests.swtpm.conftest import Sim, sld
from tests.swtpm.test_daemon import start, stop


@pytest.fixture(scope="module")
def clean_policy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("golden")
    sim = Sim(root / "sim")
    sim.up("clean")
    try:
        path = root / "fleet.toml"
        run = sld("policy", "create", "--source", f"image:{sim.info['image']}", "--tcti", sim.info["tcti"],
                  "--locality", "2", "-o", str(path))
        assert run.returncode == 0, run.stderr
        assert (root / "fleet.toml.d" / "host.toml").is_file()
        yield path
    finally:
        sld("sim", "down", "--dir", str(sim.root))


def checks_of(run) -> dict[str, dict]:
    return {c["id"]: c for c in json.loads(run.stdout)["checks"]}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_scenario_with_and_without_clean_policy(sim: Sim, clean_policy: Path, scenario: Scenario) -> None:
    sim.up(scenario.name)
    manifest = json.loads(Path(f"{sim.info['image']}.json").read_text())
    want = manifest["with_clean_policy"]
    assert want == scenario.with_clean_policy()
    bare = sim.verify("--locality", "2")
    assert json.loads(bare.stdout)["result"] == manifest["verdict"], bare.stdout  # the log alone cannot tell
    run = sim.verify("--locality", "2", "--policy", str(clean_policy))
    verdict = json.loads(run.stdout)
    assert verdict["result"] == want["verdict"], run.stdout
    checks = checks_of(run)
    if want["part"]:
        assert checks["policy.match"]["status"] == "fail"
        assert want["part"] in checks["policy.match"]["evidence"]["parts"]
        assert f"part {want['part']}" in checks["policy.match"]["detail"]
    if want["warning"]:
        assert checks[want["warning"]]["status"] == "warn" and checks_of(bare)[want["warning"]]["status"] == "warn"
    assert "Traceback" not in run.stderr


def test_failure_names_event_and_both_digests_in_full(sim: Sim, clean_policy: Path) -> None:
    sim.up("wrong-kernel")
    check = checks_of(sim.verify("--locality", "2", "--policy", str(clean_policy)))["policy.match"]
    finding = next(f for f in check["evidence"]["findings"] if "sha256" in f["found"])
    assert finding["part"] == "mle" and finding["type"] == "EVTYPE_MLE_HASH" and finding["pcr"] == 17
    assert len(finding["found"]["sha256"]) == 64 and len(finding["expected"]["sha256"][0]) == 64
    assert finding["found"]["sha256"] in check["detail"] and finding["expected"]["sha256"][0] in check["detail"]
    assert f"event {finding['event']}" in check["detail"]


def test_capped_bank_is_not_measured_per_bank(sim: Sim) -> None:
    sim.up("capped-bank")
    run = sim.verify("--locality", "2")
    verdict = json.loads(run.stdout)
    assert {p["pcr"]: p["unmeasured"] for p in verdict["pcrs"]} == {17: ["sha256"], 18: ["sha256"]}
    assert [p["banks"] for p in verdict["pcrs"]] == [{"sha1": "match", "sha256": "not-measured"}] * 2
    table = sld("verify", "--source", f"image:{sim.info['image']}", "--tcti", sim.info["tcti"], "--locality", "2")
    rows = [line.split() for line in table.stdout.splitlines() if line.startswith("PCR1")]
    assert {(r[0], r[1], r[2]) for r in rows} == {("PCR17", "sha1", "match"), ("PCR17", "sha256", "not-measured"),
                                                  ("PCR18", "sha1", "match"), ("PCR18", "sha256", "not-measured")}


def test_a_downgrade_is_remembered_in_the_state_directory(sim: Sim, clean_policy: Path, tmp_path: Path) -> None:
    sim.up("downgraded-sinit")
    old = tmp_path / "old.toml"
    assert sld("policy", "create", "--source", f"image:{sim.info['image']}", "--tcti", sim.info["tcti"],
               "--locality", "2", "-o", str(old)).returncode == 0
    both = tmp_path / "both.toml"
    refused = sld("policy", "merge", str(clean_policy), str(old), "-o", str(both))  # TxtSvn 5 vs 3: posture
    assert refused.returncode == 1 and "sinit.txt_svn is 5" in refused.stderr and not both.exists()
    assert sld("policy", "merge", str(clean_policy), str(old), "-o", str(both), "--loosen").returncode == 0
    state = tmp_path / "state"
    first = sim.verify("--locality", "2", "--policy", str(both), "--state-dir", str(state))
    assert first.returncode == 0, first.stdout  # both SINITs allowed; nothing remembered yet
    assert json.loads((state / "sinit.json").read_text())["txt_svn"] == 3
    sim.up("clean")
    assert sim.verify("--locality", "2", "--policy", str(both), "--state-dir", str(state)).returncode == 0
    assert json.loads((state / "sinit.json").read_text())["txt_svn"] == 5
    sim.up("downgraded-sinit")
    again = sim.verify("--locality", "2", "--policy", str(both), "--state-dir", str(state))
    check = checks_of(again)["sinit.downgrade"]
    assert again.returncode == 1 and check["status"] == "fail" and "older" in check["detail"]
    assert json.loads((state / "sinit.json").read_text())["txt_svn"] == 5  # a failed launch is not remembered


def test_state_is_never_written_through_a_symlink(sim: Sim, tmp_path: Path) -> None:
    sim.up("clean")
    state = tmp_path / "state"
    state.mkdir()
    target = tmp_path / "elsewhere"
    (state / "sinit.json").symlink_to(target)
    run = sim.verify("--locality", "2", "--state-dir", str(state))
    assert run.returncode == 2 and "sinit.json" in run.stderr and not target.exists()
    linked = tmp_path / "linked"
    linked.symlink_to(state)
    run = sim.verify("--locality", "2", "--state-dir", str(linked))
    assert run.returncode == 2 and "symlink" in run.stderr


def test_create_refuses_a_host_that_does_not_verify(sim: Sim, tmp_path: Path) -> None:
    sim.up("tampered-log")
    out = tmp_path / "p.toml"
    run = sld("policy", "create", "--source", f"image:{sim.info['image']}", "--tcti", sim.info["tcti"],
              "--locality", "2", "-o", str(out))
    assert run.returncode == 1 and "does not verify" in run.stderr and not out.exists()


def test_create_bounds_each_tpm_command_by_the_configured_timeout(sim: Sim, tmp_path: Path) -> None:
    """``[tpm] timeout`` holds for ``sld policy create`` as for ``sld verify``: a TPM that stops answering
    (SIGSTOPped swtpm) is a TPM timeout (exit 4) after 1 s, not after the 5 s default."""
    from sld.sim.swtpm import Swtpm

    sim.up("clean")
    conf = tmp_path / "sld.toml"
    conf.write_text("[tpm]\ntimeout = 1\n")
    pid = Swtpm.load(sim.root / "sim.json").pid
    os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        run = sld("policy", "create", "--config", str(conf), "--source", f"image:{sim.info['image']}", "--tcti",
                  sim.info["tcti"], "--locality", "2", "-o", str(tmp_path / "p.toml"))
        took = time.monotonic() - began
    finally:
        os.kill(pid, signal.SIGCONT)
    assert run.returncode == 4 and "timeout" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert took < 4.5 and not (tmp_path / "p.toml").exists()


def test_policy_show_lists_every_part(clean_policy: Path) -> None:
    run = sld("policy", "show", str(clean_policy))
    assert run.returncode == 0
    for part in ("sinit", "mle", "initrd", "cmdline", "slr-table"):
        assert any(line.split()[0] == part for line in run.stdout.splitlines()[2:])
    assert "TxtSvn >= 5" in run.stdout
    text = clean_policy.read_text()
    assert "OsSinitData.Capabilities was 0x227" in text and "# sinit: the SINIT ACM" in text
    shown = json.loads(sld("policy", "show", str(clean_policy), "--json").stdout)
    assert shown["sinit"]["txt_svn"] == 5 and {p["group"] for p in shown["parts"]} == {"platform", "os", "host"}


def test_securityfs_policy_rests_on_hash_start(sim: Sim, tmp_path: Path) -> None:
    sim.up("clean")
    out = tmp_path / "sfs.toml"
    run = sld("policy", "create", "--source", f"securityfs:{sim.info['securityfs']}", "--tcti", sim.info["tcti"],
              "--locality", "2", "-o", str(out))
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    assert "header = false" in text and "HASH_START digest" in text
    ok = sld("verify", "--source", f"securityfs:{sim.info['securityfs']}", "--tcti", sim.info["tcti"],
             "--locality", "2", "--json", "--policy", str(out))
    assert ok.returncode == 0 and "HASH_START" in checks_of(ok)["sinit.policy"]["detail"]
    assert os.path.exists(f"{out}.d/host.toml")


@pytest.mark.parametrize(("scenario", "verified"), [("clean", True), ("wrong-kernel", False), ("capped-bank", False)])
def test_the_daemon_appraises_with_its_configured_policy_and_state_dir(sim: Sim, clean_policy: Path, tmp_path: Path,
                                                                       scenario: str, verified: bool) -> None:
    sim.up(scenario)
    state = tmp_path / "state"
    daemon = start(sim, tmp_path, f'policy = "{clean_policy}"\nstate_dir = "{state}"')
    try:
        daemon.wait_for("READY=1")
        text = daemon.scrape()
        assert f"sld_launch_verified {float(verified)}" in text
        assert f'sld_check_passed{{check="policy.match"}} {float(verified)}' in text
        assert 'sld_check_passed{check="sinit.downgrade"} 1.0' in text
        assert (state / "sinit.json").exists() == verified  # only a verified launch's SINIT is remembered
        measured = 0.0 if scenario == "capped-bank" else 1.0
        assert f'sld_pcr_measured{{bank="sha256",pcr="18"}} {measured}' in text
        assert 'sld_pcr_measured{bank="sha1",pcr="18"} 1.0' in text
    finally:
        stop(daemon)


def test_a_local_verification_uses_the_configured_state_directory(sim: Sim, tmp_path: Path) -> None:
    """``sld verify --local`` reads ``[verify] state_dir`` as the daemon does: the downgrade check runs
    without ``--state-dir``, against the directory the daemon remembers the SINIT in."""
    state = tmp_path / "state"
    conf = tmp_path / "sld.toml"
    conf.write_text(f"[verify]\nstate_dir = {json.dumps(str(state))}\n")
    sim.up("clean")
    first = sim.verify("--locality", "2", "--local", "--config", str(conf))
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads((state / "sinit.json").read_text())["txt_svn"] == 5
    sim.up("downgraded-sinit")
    again = sim.verify("--locality", "2", "--local", "--config", str(conf))
    check = checks_of(again)["sinit.downgrade"]
    assert again.returncode == 1 and check["status"] == "fail" and "older" in check["detail"], again.stdout
