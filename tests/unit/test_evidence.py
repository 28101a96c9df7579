"""sld verify --evidence without a TPM: synthetic evidence signed by a real key (OpenSSL via cryptography).

Quotes a real TPM made, tpm2_checkquote as referee and TPM-made forgeries are in tests/swtpm/test_evidence.py.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sld.cli import run
from sld.errors import FormatError
from sld.evidence.bundle import parse_evidence
from sld.evidence.check import appraise
from sld.evidence.keys import key_from_der
from tests.evidence import SoftAk, synthetic

NONCE = bytes(range(32))


def _key(ak: SoftAk) -> Any:
    body = "".join(ak.pem().splitlines()[1:-1])
    return key_from_der(base64.b64decode(body))


@pytest.fixture(scope="module")
def rsa_ak() -> SoftAk:
    return SoftAk("rsa")


def verify(tmp_path: Path, ev: dict[str, Any] | str, ak: SoftAk, *extra: str,
           nonce: bytes = NONCE) -> int:
    path = tmp_path / "evidence.json"
    path.write_text(ev if isinstance(ev, str) else json.dumps(ev))
    pem = tmp_path / "ak.pem"
    pem.write_text(ak.pem())
    return run(["verify", "--evidence", str(path), "--ak", str(pem), "--nonce", nonce.hex(), *extra])


@pytest.mark.parametrize("kind", ["rsa", "ecc"])
def test_synthetic_launch_verifies(kind: str) -> None:
    ak = SoftAk(kind)
    verdict = appraise(parse_evidence(json.dumps(synthetic(ak, NONCE))), _key(ak), NONCE)
    assert verdict.result == "verified" and verdict.failure is None
    assert verdict.banks == {"sha1": "match", "sha256": "match"}
    assert all(c.status == "pass" for c in verdict.checks)


def test_json_and_exit_code(tmp_path: Path, rsa_ak: SoftAk, capsys: pytest.CaptureFixture[str]) -> None:
    code = verify(tmp_path, synthetic(rsa_ak, NONCE), rsa_ak, "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["kind"] == "evidence-verdict" and out["result"] == "verified"


def test_one_capped_bank_warns_and_is_never_a_match(tmp_path: Path, rsa_ak: SoftAk,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = verify(tmp_path, synthetic(rsa_ak, NONCE, capped=("sha1",)), rsa_ak, "--format", "ear")
    ear = json.loads(capsys.readouterr().out)
    assert code == 0 and ear["ear_status"] == "warning"
    claims = ear["submods"]["drtm"]["ear_verifier_claims"]
    assert claims["sld_banks"] == {"sha1": "not-measured", "sha256": "match"}
    assert claims["sld_warned_checks"] == ["pcr.capped"]


def test_every_bank_capped_fails(rsa_ak: SoftAk) -> None:
    ev = synthetic(rsa_ak, NONCE, capped=("sha1", "sha256"))
    verdict = appraise(parse_evidence(json.dumps(ev)), _key(rsa_ak), NONCE)
    assert verdict.failure is not None and verdict.failure.id == "evidence.replay"
    assert "every one is capped" in verdict.failure.detail
    assert verdict.banks == {"sha1": "not-measured", "sha256": "not-measured"}


def test_bank_allocated_but_not_quoted(rsa_ak: SoftAk) -> None:
    ev = synthetic(rsa_ak, NONCE)
    ev["banks"] = ["sha1", "sha256", "sha384"]  # the host says the TPM has sha384 too: it must be quoted
    verdict = appraise(parse_evidence(json.dumps(ev)), _key(rsa_ak), NONCE)
    assert verdict.failure is not None and verdict.failure.id == "evidence.banks"
    assert "sha384 is not quoted" in verdict.failure.detail


def test_policy_violation_is_named(tmp_path: Path, rsa_ak: SoftAk, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[pcrs.sha256]\n17 = "{"00" * 32}"\n')
    code = verify(tmp_path, synthetic(rsa_ak, NONCE), rsa_ak, "--json", "--policy", str(policy))
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["failure"]["id"] == "policy.match" and "PCR17 sha256" in out["failure"]["detail"]


def test_ecdsa_signature_under_the_rsa_ak_is_named(rsa_ak: SoftAk) -> None:
    ev = synthetic(SoftAk("ecc"), NONCE)
    verdict = appraise(parse_evidence(json.dumps(ev)), _key(rsa_ak), NONCE)
    assert verdict.failure is not None and verdict.failure.id == "evidence.signature"
    assert "an ECDSA signature, where the rsa AK signs RSASSA" in verdict.failure.detail


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _truncated_attest(ev: dict[str, Any]) -> None:
    ev["quotes"][0]["attest"] = _b64(base64.b64decode(ev["quotes"][0]["attest"])[:60])


BAD_EVIDENCE: dict[str, tuple[Any, str | None]] = {
    "not JSON": ("{\"schema\": 1,", "evidence: not JSON"),
    "not an object": ("[1]", "evidence: not a JSON object"),
    "missing quotes": (lambda ev: ev.pop("quotes"), "evidence.quotes: missing"),
    "quotes not a list": (lambda ev: ev.update(quotes={}), "evidence.quotes: expected a JSON array, got object"),
    "bad base64": (lambda ev: ev["quotes"][1].update(signature="$$$"), "evidence.quotes[1].signature: not base64"),
    "truncated attest": (_truncated_attest, "quotes[0].attest: TPMS_ATTEST.extraData.buffer at 0x2c: truncated"),
    "bad PCR hex": (lambda ev: ev["quotes"][0]["pcrs"].update({"17": "xyz"}), "evidence.quotes[0].pcrs.17: not hex"),
    "short PCR": (lambda ev: ev["quotes"][0]["pcrs"].update({"17": "00"}), "1 bytes, a sha1 PCR holds 20"),
    "unknown bank": (lambda ev: ev["quotes"][0].update(bank="md5"), "evidence.quotes[0].bank: unknown bank"),
    "wrong schema": (lambda ev: ev.update(schema=2), "evidence.schema: expected schema 1"),
    "bad AK public": (lambda ev: ev["ak"].update(public=_b64(b"\x00\x04abcd")), "evidence.ak.public: TPMT_PUBLIC"),
    "bad log": (lambda ev: ev.update(drtm_log=_b64(b"\x00" * 8)), None),
    "no log": (lambda ev: ev.update(drtm_log=None), None),
    "log not text": (lambda ev: ev.update(drtm_log=7), "evidence.drtm_log: expected a JSON string or null, got number"),
    "log missing": (lambda ev: ev.pop("drtm_log"), "evidence.drtm_log: missing"),
}


@pytest.mark.parametrize("case", BAD_EVIDENCE)
def test_bad_evidence_names_the_key(tmp_path: Path, rsa_ak: SoftAk, capsys: pytest.CaptureFixture[str],
                                    case: str) -> None:
    change, message = BAD_EVIDENCE[case]
    ev: Any = change
    if callable(change):
        ev = synthetic(rsa_ak, NONCE)
        change(ev)
    code = verify(tmp_path, ev, rsa_ak, "--json")
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    if message is None:  # a log that does not parse is a failed check, not a broken file
        assert json.loads(captured.out)["failure"]["id"] == "log.valid"
    else:
        assert message in captured.err, captured.err


@pytest.mark.parametrize(("args", "message"), [
    (["--nonce", "00" * 8], "--nonce: 8 bytes; the verifier's nonce must be 16..64 bytes"),
    (["--nonce", "00" * 65], "--nonce: 65 bytes; the verifier's nonce must be 16..64 bytes"),
    (["--nonce", "zz"], "--nonce: not hex"),
    (["--ak", "/nonexistent.pem"], "/nonexistent.pem:--ak: cannot read the AK"),
])
def test_usage_errors_exit_2(tmp_path: Path, rsa_ak: SoftAk, capsys: pytest.CaptureFixture[str],
                             args: list[str], message: str) -> None:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(synthetic(rsa_ak, NONCE)))
    pem = tmp_path / "ak.pem"
    pem.write_text(rsa_ak.pem())
    opts = {"--ak": str(pem), "--nonce": NONCE.hex(), **dict(zip(args[::2], args[1::2], strict=True))}
    code = run(["verify", "--evidence", str(path), *[x for kv in opts.items() for x in kv]])
    assert code == 2 and message in capsys.readouterr().err


def test_a_pem_that_is_not_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pem = tmp_path / "ak.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n")
    code = run(["verify", "--evidence", str(pem), "--ak", str(pem), "--nonce", NONCE.hex()])
    assert code == 2 and "--ak: not a usable public key" in capsys.readouterr().err


def test_evidence_options_need_evidence(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["verify", "--format", "ear"]) == 2
    assert "--evidence" in capsys.readouterr().err


ARGVS = [
    ["verify", "--evidence", "e.json", "--ak", "ak.pem", "--nonce", "00" * 16],
    ["verify", "--json", "--evidence=e.json", "--ak=ak.pem", "--nonce", "ab" * 16, "--format", "ear"],
    ["verify", "--evidence", "e.json", "--previous", "old.json", "--policy", "p.toml", "--format=json"],
    ["verify", "--evidence", "e.json", "--tcti", "x"],  # read as argparse reads them; the handler judges
    ["verify", "--ak", "ak.pem"],
]


@pytest.mark.parametrize("argv", ARGVS)
def test_fast_options_are_what_argparse_makes(argv: list[str]) -> None:
    from sld.cli import _read_verify, build_parser

    fast = _read_verify(argv)
    assert fast is not None
    assert vars(fast) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", [
    ["verify", "--evidence", "e.json", "--help"],
    ["verify", "--evidence", "e.json", "--evidence", "f.json"],
    ["verify", "--evidence", "e.json", "--format", "yaml"],
    ["verify", "--evidence", "e.json", "--ak"],
    ["verify", "--evidence", "e.json", "--ak", "--json"],
    ["status", "--evidence", "e.json"],
])
def test_anything_else_is_left_to_argparse(argv: list[str]) -> None:
    from sld.cli import _read_verify

    assert _read_verify(argv) is None


def test_main_takes_the_fast_path_to_the_same_answer(tmp_path: Path, rsa_ak: SoftAk,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from sld.cli import main

    path, pem = tmp_path / "evidence.json", tmp_path / "ak.pem"
    path.write_text(json.dumps(synthetic(rsa_ak, NONCE, capped=("sha1",))))
    pem.write_text(rsa_ak.pem())
    argv = ["verify", "--evidence", str(path), "--ak", str(pem), "--nonce", NONCE.hex(), "--json"]
    assert main(argv) == run(argv) == 0
    fast, slow = capsys.readouterr().out.split("\n}\n")[:2]
    assert json.loads(fast + "}") == json.loads(slow + "}")
    assert main([*argv[:-2], "00" * 8]) == 2 and "--nonce" in capsys.readouterr().err


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(["attest", "signature", "public", "log"]), at=st.integers(0, 12) | st.integers(0, 2000),
       value=st.integers(0, 255), cut=st.booleans())
def test_any_corrupted_byte_is_a_named_failure_never_a_crash(field: str, at: int, value: int, cut: bool) -> None:
    """One byte of a quote, the AK or the log changed (or the structure cut there): a FormatError or a
    failed check, never another exception, and never a verified verdict."""
    ev = copy.deepcopy(_EVIDENCE)
    holder, key = {"attest": (ev["quotes"][1], "attest"), "signature": (ev["quotes"][0], "signature"),
                   "public": (ev["ak"], "public"), "log": (ev, "drtm_log")}[field]
    data = bytearray(base64.b64decode(holder[key]))
    at %= len(data)
    if data[at] == value and not cut:
        return
    data[at] = value
    holder[key] = _b64(bytes(data[:at] if cut else data))
    try:
        verdict = appraise(parse_evidence(json.dumps(ev)), _key(_AK), NONCE)
    except FormatError as err:
        assert err.structure == "evidence" and err.field
        return
    if field != "log":  # a log byte may sit in event data no digest covers
        assert verdict.failure is not None


_AK = SoftAk("ecc")
_EVIDENCE = synthetic(_AK, NONCE)


def test_an_unknown_signature_hash_and_a_bank_quoted_twice(rsa_ak: SoftAk) -> None:
    ev = synthetic(rsa_ak, NONCE)
    sig = bytearray(base64.b64decode(ev["quotes"][0]["signature"]))
    sig[2:4] = b"\x00\x99"  # TPMT_SIGNATURE.signature.hash
    ev["quotes"][0]["signature"] = _b64(bytes(sig))
    ev["quotes"].append(copy.deepcopy(ev["quotes"][1]))
    verdict = appraise(parse_evidence(json.dumps(ev)), _key(rsa_ak), NONCE)
    problems = {c.id: c.detail for c in verdict.checks if c.status == "fail"}
    assert "signed with hash alg 0x0099" in problems["evidence.signature"]
    assert "which sld cannot compute the pcrDigest with" in problems["evidence.digest"]
    assert problems["evidence.banks"] == "sha256 is quoted 2 times"


@pytest.mark.parametrize(("now", "fresh"), [
    ({"clock": 2000}, True),
    ({"clock": 1000}, False),  # the same clock: the same quote, or a replay
    ({"clock": 500, "reset": 4, "safe": 0}, True),  # rebooted after an unorderly shutdown: clock lags, says so
    ({"clock": 500, "reset": 4, "safe": 1}, False),
    ({"clock": 2000, "reset": 2}, False),
    ({"clock": 2000, "restart": 0}, False),
    ({"clock": 2000, "restart": 2}, True),
])
def test_previous_evidence_orders_by_the_tpm_clock(rsa_ak: SoftAk, now: dict[str, int], fresh: bool) -> None:
    previous = parse_evidence(json.dumps(synthetic(rsa_ak, NONCE, clock=1000, restart=1)))
    current = parse_evidence(json.dumps(synthetic(rsa_ak, NONCE, **{"restart": 1, **now})))
    freshness = appraise(current, _key(rsa_ak), NONCE, previous=previous).checks[-1]
    assert freshness.id == "evidence.freshness" and (freshness.status == "pass") == fresh, freshness.detail


def test_previous_evidence_of_another_ak_is_no_history(rsa_ak: SoftAk) -> None:
    previous = parse_evidence(json.dumps(synthetic(SoftAk("ecc"), NONCE)))
    current = parse_evidence(json.dumps(synthetic(rsa_ak, NONCE, clock=5000)))
    freshness = appraise(current, _key(rsa_ak), NONCE, previous=previous).checks[-1]
    assert freshness.status == "fail" and "another AK" in freshness.detail


def test_text_names_the_first_failure_then_every_check(tmp_path: Path, rsa_ak: SoftAk,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert verify(tmp_path, synthetic(rsa_ak, NONCE), rsa_ak, nonce=bytes(32)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("evidence: failed (evidence.nonce: sha1 quote: extraData ")
    assert [line.split()[:2] for line in lines[1:3]] == [["evidence.signature", "pass"], ["evidence.ak", "pass"]]
    assert ["evidence.nonce", "fail"] in [line.split()[:2] for line in lines]
    assert [line.split() for line in lines[-2:]] == [["bank", "sha1", "match"], ["bank", "sha256", "match"]]


def test_ear_contraindicates_a_failure_and_names_it(tmp_path: Path, rsa_ak: SoftAk,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[pcrs.sha256]\n17 = "{"00" * 32}"\n')
    code = verify(tmp_path, synthetic(rsa_ak, NONCE), rsa_ak, "--format", "ear", "--policy", str(policy),
                  nonce=bytes(range(1, 33)))
    ear = json.loads(capsys.readouterr().out)
    drtm = ear["submods"]["drtm"]
    assert code == 1 and ear["ear_status"] == drtm["ear_status"] == "contraindicated"
    assert drtm["ear_verifier_claims"]["sld_failed_checks"] == ["evidence.nonce", "policy.match"]
    assert drtm["ear_verifier_claims"]["sld_first_failure"]["id"] == "evidence.nonce"
    assert drtm["ear_appraisal_policy_ids"] == [str(policy)]
    assert set(ear) == {"eat_profile", "iat", "ear_verifier_id", "ear_status", "eat_nonce", "submods"}
    assert ear["ear_verifier_id"]["build"].startswith("sld ") and isinstance(ear["iat"], int)
