"""sld verify --evidence on quotes a real TPM made (swtpm launched by ``sld sim up``, quoted by tpm2-tools).

tpm2_checkquote is the referee for every quote sld accepts; each tampering is rejected with its own
check id named as the first failure.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sld.formats import tpm2
from sld.formats.eventlog import parse_log
from sld.formats.names import ALG_ID
from sld.formats.tpm2_names import TPM_GENERATED_VALUE
from tests import evidence
from tests.swtpm.conftest import Sim, sld
from tests.tpm2tools import Ak, Tools, missing_tools, pcr_blob

if missing_tools():
    pytest.skip(f"tpm2-tools (Debian tpm2-tools) lacks {', '.join(missing_tools())}", allow_module_level=True)

NONCE = bytes.fromhex("a5" * 20)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Host:
    """A launched simulated host, its AK and one evidence file for NONCE."""

    tools: Tools
    ak: Ak
    log: bytes
    evidence: dict[str, Any]
    dir: Path

    def verify(self, ev: dict[str, Any] | None = None, *extra: str, ak: Path | None = None,
               nonce: bytes = NONCE) -> subprocess.CompletedProcess[str]:
        path = evidence.write(self.dir / "evidence.json", self.evidence if ev is None else ev)
        return subprocess.run([sys.executable, "-m", "sld.cli", "verify", "--evidence", str(path), "--ak",
                               str(ak or self.ak.pem), "--nonce", nonce.hex(), "--json", *extra],
                              capture_output=True, text=True, timeout=60)


def launched(sim: Sim, tmp_path: Path, key: str = "rsa") -> Host:
    info = sim.up("clean")
    tools = Tools(info["tcti"], tmp_path / "tools")
    ak = tools.create_ak(key)
    raw = (Path(info["securityfs"]) / "eventlog").read_bytes()
    log = raw[: parse_log(raw).end]  # the records, without the buffer's zero fill
    return Host(tools, ak, log, evidence.make(tools, ak, log, NONCE), tmp_path)


@pytest.fixture
def host(sim: Sim, tmp_path: Path) -> Iterator[Host]:
    yield launched(sim, tmp_path)


def verdict(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in run.stderr
    out: dict[str, Any] = json.loads(run.stdout)
    return out


@pytest.mark.parametrize("key", ["rsa", "ecc"])
def test_launched_host_verifies_and_tpm2_checkquote_agrees(sim: Sim, tmp_path: Path, key: str) -> None:
    h = launched(sim, tmp_path, key)
    run = h.verify()
    out = verdict(run)
    assert run.returncode == 0, out
    assert out["result"] == "verified" and out["failure"] is None
    assert out["banks"] == {"sha1": "match", "sha256": "match"}
    assert [c["id"] for c in out["checks"]][:2] == ["evidence.signature", "evidence.ak"]
    for bank in ("sha1", "sha256"):
        referee = h.tools.checkquote(h.ak.pem, h.tools.quote(h.ak, f"{bank}:{evidence.DRTM}", NONCE, f"ref-{bank}"),
                                     NONCE)
        assert referee.returncode == 0, referee.stderr


def test_ear_affirms_a_verified_launch(host: Host) -> None:
    run = host.verify(None, "--format", "ear")
    ear = json.loads(run.stdout)
    assert run.returncode == 0
    assert ear["eat_profile"] == "tag:ietf.org,2026:rats/ear#04" and ear["ear_status"] == "affirming"
    assert ear["submods"]["drtm"]["ear_status"] == "affirming"
    assert ear["submods"]["drtm"]["ear_verifier_claims"]["sld_failed_checks"] == []
    assert base64.urlsafe_b64decode(ear["eat_nonce"] + "==") == NONCE


def _quote(ev: dict[str, Any], bank: str) -> dict[str, Any]:
    found: dict[str, Any] = next(q for q in ev["quotes"] if q["bank"] == bank)
    return found


def changed_pcr(h: Host, ev: dict[str, Any]) -> None:
    q = _quote(ev, "sha256")
    q["pcrs"]["18"] = ("00" if q["pcrs"]["18"][:2] != "00" else "11") + q["pcrs"]["18"][2:]


def changed_log_event(h: Host, ev: dict[str, Any]) -> None:
    log = parse_log(h.log)
    target = log.events[-2].digests["sha256"]  # a Secure Launch event's digest, as logged
    at = h.log.index(target)
    ev["drtm_log"] = base64.b64encode(h.log[:at] + bytes([h.log[at] ^ 1]) + h.log[at + 1 :]).decode()


def missing_bank(h: Host, ev: dict[str, Any]) -> None:
    ev["quotes"] = [_quote(ev, "sha256")]


TAMPERING: dict[str, tuple[Callable[[Host, dict[str, Any]], None], str]] = {
    "changed PCR value": (changed_pcr, "evidence.digest"),
    "changed log event": (changed_log_event, "evidence.replay"),
    "missing bank": (missing_bank, "evidence.banks"),
}


@pytest.mark.parametrize("case", TAMPERING)
def test_tampered_evidence_names_its_reason(host: Host, case: str) -> None:
    tamper, reason = TAMPERING[case]
    ev = copy.deepcopy(host.evidence)
    tamper(host, ev)
    out = verdict(run := host.verify(ev))
    assert run.returncode == 1 and out["result"] == "failed"
    assert out["failure"]["id"] == reason, out["failure"]


def test_another_nonce(host: Host) -> None:
    out = verdict(run := host.verify(None, nonce=bytes.fromhex("5a" * 20)))
    assert run.returncode == 1 and out["failure"]["id"] == "evidence.nonce"


def test_another_ak(host: Host) -> None:
    other = host.tools.create_ak("rsa", label="other")
    out = verdict(run := host.verify(None, ak=other.pem))
    assert run.returncode == 1 and out["failure"]["id"] == "evidence.signature"


def _forged_quote(h: Host, ev: dict[str, Any], magic: int) -> bytes:
    """The sha256 quote rewritten to claim all-zero PCR17-22 (pcrDigest to match), with ``magic``."""
    q = _quote(ev, "sha256")
    attest = tpm2.parse(tpm2.TPMS_ATTEST, base64.b64decode(q["attest"]), "TPMS_ATTEST")
    q["pcrs"] = {str(p): "00" * 32 for p in range(17, 23)}
    attest.attested.pcrDigest.buffer = hashlib.sha256(bytes(32 * 6)).digest()
    attest.magic = magic
    return tpm2.build_struct(tpm2.TPMS_ATTEST, attest, "TPMS_ATTEST")


def test_restricted_ak_signs_a_forged_attest_only_without_the_magic(host: Host) -> None:
    ev = copy.deepcopy(host.evidence)
    forged = host.dir / "forged.attest"
    forged.write_bytes(_forged_quote(host, ev, TPM_GENERATED_VALUE))
    with pytest.raises(AssertionError, match="ticket"):  # TPM2_Sign: a restricted key never signs TPM_GENERATED
        host.tools.sign(host.ak, forged)
    forged.write_bytes(_forged_quote(host, ev, TPM_GENERATED_VALUE ^ 0xFF000000))
    q = _quote(ev, "sha256")
    q["attest"] = base64.b64encode(forged.read_bytes()).decode()
    q["signature"] = base64.b64encode(host.tools.sign(host.ak, forged).read_bytes()).decode()
    out = verdict(run := host.verify(ev))
    assert run.returncode == 1
    assert out["checks"][0] == {**out["checks"][0], "id": "evidence.signature", "status": "pass"}
    assert out["failure"]["id"] == "evidence.magic"


def test_unrestricted_key_forging_a_quote_is_no_ak(host: Host) -> None:
    forger = host.tools.unrestricted_key()
    ev = copy.deepcopy(host.evidence)
    forged = host.dir / "forged.attest"
    forged.write_bytes(_forged_quote(host, ev, TPM_GENERATED_VALUE))
    q = _quote(ev, "sha256")
    q["attest"] = base64.b64encode(forged.read_bytes()).decode()
    q["signature"] = base64.b64encode(host.tools.sign(forger, forged).read_bytes()).decode()
    ev["quotes"] = [q]
    ev["ak"] = {"pem": forger.pem.read_text(), "name": forger.name.read_bytes().hex(),
                "public": base64.b64encode(forger.public.read_bytes()).decode()}
    out = verdict(run := host.verify(ev, ak=forger.pem))
    assert run.returncode == 1
    assert [c["status"] for c in out["checks"][:1]] == ["pass"]  # the signature is the forger's own
    assert out["failure"]["id"] == "evidence.ak" and "restricted" in out["failure"]["detail"]


def test_evidence_older_than_previous(host: Host) -> None:
    older = evidence.write(host.dir / "older.json", host.evidence)
    newer = evidence.write(host.dir / "newer.json", evidence.make(host.tools, host.ak, host.log, NONCE, label="new"))
    run = host.verify(json.loads(newer.read_text()), "--previous", str(older))
    assert run.returncode == 0, run.stdout
    out = verdict(run := host.verify(json.loads(older.read_text()), "--previous", str(newer)))
    assert run.returncode == 1 and out["failure"]["id"] == "evidence.freshness"
    assert "clock" in out["failure"]["detail"]


def quote_files(h: Host, ev: dict[str, Any], bank: str) -> tuple[Path, Path, Path]:
    """One quote of the evidence as the files quote checkers read: attest, signature, tpm2-tools PCR blob."""
    q = _quote(ev, bank)
    files = [h.dir / f"{bank}.{ext}" for ext in ("attest", "sig", "pcrs")]
    files[0].write_bytes(base64.b64decode(q["attest"]))
    files[1].write_bytes(base64.b64decode(q["signature"]))
    files[2].write_bytes(pcr_blob(ALG_ID[bank], {int(p): bytes.fromhex(v) for p, v in q["pcrs"].items()}))
    return files[0], files[1], files[2]


def keylime(referee: str, h: Host, files: tuple[Path, Path, Path]) -> dict[str, Any]:
    run = subprocess.run([referee, str(ROOT / "tests" / "swtpm" / "keylime_quote.py"), str(h.ak.pem), NONCE.hex(),
                          *map(str, files)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return out


def test_keylime_and_tpm2_checkquote_accept_the_evidence_as_sld_does(host: Host, referee: str) -> None:
    """The quotes, signatures and PCR values of the evidence file itself (the PCR blob written from it).

    Keylime's checkquote reads only the selection of the bank its signature's hash names
    (tpm_util.__hash_pcr_banks), so it judges the sha256 quote; tpm2_checkquote judges both.
    """
    assert host.verify().returncode == 0
    for bank in ("sha1", "sha256"):
        attest, sig, blob = quote_files(host, host.evidence, bank)
        assert blob.read_bytes() == host.tools.quote(host.ak, f"{bank}:{evidence.DRTM}", NONCE, f"blob-{bank}") \
            .pcrs.read_bytes()  # the blob writer is tpm2-tools' own format, byte for byte
        if bank == "sha256":
            judged = keylime(referee, host, (attest, sig, blob))
            assert judged == {"pcrs": _quote(host.evidence, bank)["pcrs"]}, judged
        run = host.tools.run("tpm2_checkquote", "-u", str(host.ak.pem), "-m", str(attest), "-s", str(sig), "-f",
                             str(blob), "-g", "sha256", "-q", NONCE.hex(), check=False)
        assert run.returncode == 0, run.stderr


def test_keylime_rejects_what_sld_rejects(host: Host, referee: str) -> None:
    ev = copy.deepcopy(host.evidence)
    changed_pcr(host, ev)
    assert verdict(host.verify(ev))["failure"]["id"] == "evidence.digest"
    assert "digest" in keylime(referee, host, quote_files(host, ev, "sha256")).get("error", "")
    other = host.tools.create_ak("rsa", label="other")
    assert verdict(host.verify(None, ak=other.pem))["failure"]["id"] == "evidence.signature"
    pem = host.ak.pem
    host.ak = Ak(host.ak.ctx, host.ak.public, other.pem, host.ak.name)  # keylime given the other AK's PEM
    assert "error" in keylime(referee, host, quote_files(host, host.evidence, "sha256"))
    host.ak = Ak(host.ak.ctx, host.ak.public, pem, host.ak.name)


def _attest(sim: Sim, tmp_path: Path, scenario: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """``sld attest`` on the scenario's host (AK by ``sld ak create``), then ``sld verify --evidence`` of it."""
    info = sim.up(scenario)
    made = json.loads(sld("ak", "create", "--tcti", info["tcti"], "--json").stdout)
    pem = tmp_path / "ak.pem"
    pem.write_text(made["ak"]["pem"])
    out = tmp_path / "evidence.json"
    run = sld("attest", "--nonce", NONCE.hex(), "--source", f"image:{info['image']}", "--tcti", info["tcti"], "-o",
              str(out))
    assert run.returncode == 0, run.stderr
    checked = sld("verify", "--evidence", str(out), "--ak", str(pem), "--nonce", NONCE.hex(), "--json")
    return json.loads(out.read_text()), checked


def test_sld_attest_of_the_plain_simulator_verifies_remotely(sim: Sim, tmp_path: Path) -> None:
    """`sld sim up` allocates exactly the log's banks, so the host's own evidence passes every remote check."""
    evidence, checked = _attest(sim, tmp_path, "clean")
    assert evidence["banks"] == ["sha1", "sha256"] and evidence["verdict"]["result"] == "verified"
    result = verdict(checked)
    assert checked.returncode == 0 and result["result"] == "verified", result
    assert result["banks"] == {"sha1": "match", "sha256": "match"}


def test_sld_attest_of_a_bank_the_log_does_not_cover_is_not_verified(sim: Sim, tmp_path: Path) -> None:
    """The uncovered-bank TPM also allocates sha384; the DRTM sequence reset it, but the log records sha1 and
    sha256 only: sha384 is quoted (sld attest) and cannot be replayed, so the evidence fails, and the host's
    advisory verdict (sld verify's rule, pcr.banks) fails too."""
    evidence, checked = _attest(sim, tmp_path, "uncovered-bank")
    assert evidence["banks"] == ["sha1", "sha256", "sha384"]
    assert evidence["verdict"]["result"] == "failed" and evidence["verdict"]["failed"] == ["pcr.banks"]
    result = verdict(checked)
    assert checked.returncode == 1 and result["failure"]["id"] == "evidence.replay"
    assert "sha384 is quoted but the log has no sha384 digests" in result["failure"]["detail"]
    assert result["banks"] == {"sha1": "match", "sha256": "match", "sha384": "not-covered"}
    assert [c["status"] for c in result["checks"][:8]] == ["pass"] * 8  # the quotes themselves are sound
