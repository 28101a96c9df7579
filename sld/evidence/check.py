"""Evidence -> verdict: whether another machine's quotes prove its dynamic launch (pure; no TPM, no TXT).

Each check of :class:`sld.vocab.CheckId`'s ``evidence.*`` list is made, in catalogue order, over every
quote, and the verdict names the first that failed. What the checks stand on (TPM 2.0 Part 1 §18.4,
Part 3 TPM2_Quote): a restricted signing key signs only digests the TPM computed itself over data that
starts with TPM_GENERATED_VALUE, so a valid signature by the AK over a TPMS_ATTEST with that magic is
the TPM's own statement of its PCRs, made for this nonce. Everything else in the evidence (the log,
the PCR values, ``platform``, the host's ``verdict``) is the host's claim, believed only where a
signed digest covers it: the reported PCRs must hash to the quoted pcrDigest, and the log must replay
to them in every bank (go-attestation accepts the first bank that replays, so a host that measured
one bank and left another open passes there).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

from sld.errors import FormatError
from sld.evidence.bundle import Evidence, Quote
from sld.evidence.keys import EcKey, RsaKey
from sld.formats.eventlog import EventLog, parse_log
from sld.formats.names import ALG_ID, ALGORITHMS
from sld.formats.quote import object_name, selected_pcrs
from sld.formats.tpm2_names import TPM_GENERATED_VALUE, TpmAlg, TpmEccCurve, TpmSt
from sld.replay import DRTM_PCRS, replay, unmeasured
from sld.text import count
from sld.vocab import CheckId, CheckStatus, PcrStatus, Result

TYPE_CHECKING = False  # typing and the appraisal's dataclasses cost a cold verification more than its checks
if TYPE_CHECKING:
    from sld.appraisal.model import Policy

# TPMA_OBJECT bits (Part 2 §8.3.2) every AK has: made in this TPM, never duplicated, and restricted signing
FIXED_TPM, FIXED_PARENT, RESTRICTED, SIGN = 1 << 1, 1 << 4, 1 << 16, 1 << 18
AK_ATTRIBUTES = {"fixedTPM": FIXED_TPM, "fixedParent": FIXED_PARENT, "restricted": RESTRICTED, "sign": SIGN}


class Outcome:
    """One check's result over the whole evidence; ``detail`` says what failed where (quote, bank, PCR).

    sld.checks.Check's fields, as a slotted class: that module's dataclasses and typing cost a cold
    verification of evidence more than all of its checks (benchmarks/verify_evidence.py).
    """

    __slots__ = ("id", "status", "detail")

    def __init__(self, check: CheckId, status: CheckStatus, detail: str) -> None:
        self.id = check
        self.status = status
        self.detail = detail

    def as_json(self) -> dict[str, str]:
        """The check as the JSON output and the EAR name it (same ids as sld's own verdicts)."""
        return {"id": self.id, "status": self.status, "detail": self.detail}


class EvidenceVerdict:
    """The outcomes in check order, the state of each bank, and the first failure (None when verified)."""

    __slots__ = ("checks", "banks", "result", "failure")

    def __init__(self, checks: list[Outcome], banks: dict[str, PcrStatus]) -> None:
        self.checks = tuple(checks)
        self.banks = banks
        self.failure = next((c for c in checks if c.status == CheckStatus.FAIL), None)
        self.result = Result.FAILED if self.failure else Result.VERIFIED

    @property
    def exit_code(self) -> int:
        """``sld verify --evidence``'s exit code: 0 verified, 1 failed, as ``sld verify``'s table says."""
        return 0 if self.result == Result.VERIFIED else 1

    @property
    def warnings(self) -> tuple[Outcome, ...]:
        """The checks that passed with a warning: they make an EAR ``warning`` rather than ``affirming``."""
        return tuple(c for c in self.checks if c.status == CheckStatus.WARN)


def _outcome(check: CheckId, problems: Iterable[str], passed: str) -> Outcome:
    bad = list(problems)
    return Outcome(check, CheckStatus.FAIL, "; ".join(bad)) if bad else Outcome(check, CheckStatus.PASS, passed)


def _bank_of(alg: int) -> str:
    return ALGORITHMS.get(alg, (f"alg 0x{alg:04x}", 0))[0]


# ---- the quote itself ---------------------------------------------------------------------------


def _signature_problem(q: Quote, ak: RsaKey | EcKey) -> str | None:
    sig = q.signature
    digest = hashlib.sha256(q.attest_bytes).digest()
    if sig.hash != TpmAlg.SHA256:
        return f"{q.bank} quote: signed with hash {_bank_of(sig.hash)}, sld verifies SHA-256 signatures"
    if isinstance(ak, RsaKey) and sig.sig_alg == TpmAlg.RSASSA:
        good = ak.verify_pkcs1v15_sha256(digest, sig.sig)
    elif isinstance(ak, EcKey) and sig.sig_alg == TpmAlg.ECDSA:
        good = ak.verify_ecdsa_sha256(digest, int.from_bytes(sig.r, "big"), int.from_bytes(sig.s, "big"))
    else:
        expected = "RSASSA" if isinstance(ak, RsaKey) else "ECDSA"
        return f"{q.bank} quote: an {TpmAlg(sig.sig_alg).name} signature, where the {ak.kind} AK signs {expected}"
    return None if good else f"{q.bank} quote: the signature does not verify with the AK"


def _ak_problems(evidence: Evidence, ak: RsaKey | EcKey) -> Iterable[str]:
    pub = evidence.ak_public
    if pub.type == TpmAlg.RSA:
        same = isinstance(ak, RsaKey) and (int.from_bytes(pub.unique[0], "big"), pub.exponent) == (ak.n, ak.e)
    else:
        same = (isinstance(ak, EcKey) and pub.curve == TpmEccCurve.NIST_P256
                and tuple(int.from_bytes(c, "big") for c in pub.unique) == (ak.x, ak.y))
    if not same:
        yield "ak.public is not the key given with --ak"
    lacking = [name for name, bit in AK_ATTRIBUTES.items() if not pub.attributes & bit]
    if lacking:
        yield f"ak.public lacks {', '.join(lacking)}: not a key only the TPM can sign quotes with"
    try:
        named = evidence.ak_name == object_name(pub.area)
    except FormatError as err:
        yield f"ak.public: {err}"
        return
    if not named:
        yield "ak.name is not the Name of ak.public"


def _selection_problems(q: Quote) -> Iterable[str]:
    sel = q.attest.selections
    if len(sel) != 1 or sel[0][0] != ALG_ID[q.bank]:
        yield f"{q.bank} quote selects {[_bank_of(alg) for alg, _ in sel]}, not its own bank alone"
        return
    pcrs = selected_pcrs(sel[0][1])
    if not set(DRTM_PCRS) <= set(pcrs):
        yield f"{q.bank} quote selects PCRs {list(pcrs)}, not all of 17-22"
    if set(pcrs) != set(q.pcrs):
        yield f"{q.bank} quote selects PCRs {list(pcrs)} but reports {sorted(q.pcrs)}"


def _digest_problem(q: Quote) -> str | None:
    """pcrDigest is the hash, with the signing scheme's hash, of the selected PCRs in order (Part 3 §18.4)."""
    pcrs = [p for _, bitmap in q.attest.selections for p in selected_pcrs(bitmap)]
    if any(p not in q.pcrs for p in pcrs):
        return f"{q.bank} quote: reported PCR values do not cover its selection"
    scheme_hash = _bank_of(q.signature.hash)
    if scheme_hash not in hashlib.algorithms_available:
        return f"{q.bank} quote: signed with hash {scheme_hash}, which sld cannot compute the pcrDigest with"
    if hashlib.new(scheme_hash, b"".join(q.pcrs[p] for p in pcrs)).digest() != q.attest.pcr_digest:
        return f"{q.bank} quote: the reported PCR values do not hash to the quoted pcrDigest"
    return None


# ---- the log ------------------------------------------------------------------------------------


def _replay_checks(evidence: Evidence, log: EventLog, quoted: dict[str, Quote]) -> tuple[list[Outcome],
                                                                                     dict[str, PcrStatus]]:
    expected = replay(log, pcrs=DRTM_PCRS).values
    capped = {bank for banks in unmeasured(log, log.banks).values() for bank in banks}
    wanted = list(dict.fromkeys([*log.banks, *evidence.banks]))
    banks: dict[str, PcrStatus] = {}
    replay_problems = []
    for bank, q in quoted.items():
        if bank not in expected:
            replay_problems.append(f"{bank} is quoted but the log has no {bank} digests to replay")
            banks[bank] = PcrStatus.NOT_COVERED  # as sld verify's pcr.banks reports an allocated bank the log lacks
            continue
        bad = [p for p in DRTM_PCRS if q.pcrs.get(p) != expected[bank][p]]
        if bad:
            replay_problems.append(f"{bank} PCR{','.join(map(str, bad))}: the quoted value is not the replay "
                                   f"of the log (PCR{bad[0]} quoted {q.pcrs.get(bad[0], b'').hex()}, replayed "
                                   f"{expected[bank][bad[0]].hex()})")
        banks[bank] = PcrStatus.NOT_MEASURED if bank in capped else PcrStatus.MISMATCH if bad else PcrStatus.MATCH
    missing = [f"{b} is not quoted" for b in wanted if b not in quoted]
    missing += [f"{b} is quoted {n} times" for b, n in Counter(q.bank for q in evidence.quotes).items() if n > 1]
    if banks and PcrStatus.MATCH not in banks.values() and not replay_problems:
        replay_problems.append("no quoted bank holds a measurement: every one is capped")
    not_measured = sorted(capped & set(banks))
    return [
        _outcome(CheckId.EVIDENCE_BANKS, missing,
                 f"quoted: {', '.join(quoted)} (log: {', '.join(log.banks)})"),
        _outcome(CheckId.EVIDENCE_REPLAY, replay_problems, f"PCR17-22 equal the log's replay in {', '.join(quoted)}"),
        Outcome(CheckId.PCR_CAPPED, CheckStatus.WARN, f"not measured (capped): {', '.join(not_measured)}")
        if not_measured else Outcome(CheckId.PCR_CAPPED, CheckStatus.PASS, "no quoted bank is capped"),
    ], banks


# ---- freshness ----------------------------------------------------------------------------------


def _freshness_problems(evidence: Evidence, previous: Evidence) -> Iterable[str]:
    """TPMS_CLOCK_INFO (Part 2 §10.11.1): resetCount and restartCount never go back, and Clock advances.

    Clock is saved to NV only now and then, so after an unorderly shutdown it may restart behind its
    last value; the TPM then says so (``safe`` NO) and resetCount has grown: only that case excuses a
    clock that did not move forward. Evidence of another AK is no history of this one.
    """
    if previous.ak_name != evidence.ak_name:
        yield f"the previous evidence is of another AK ({previous.ak_name.hex()})"
        return
    last = max(previous.quotes, key=lambda q: (q.attest.reset_count, q.attest.restart_count, q.attest.clock)).attest
    for q in evidence.quotes:
        a = q.attest
        if a.reset_count < last.reset_count:
            yield f"{q.bank} quote: resetCount {a.reset_count} is below the previous {last.reset_count}"
        elif a.reset_count == last.reset_count and a.restart_count < last.restart_count:
            yield f"{q.bank} quote: restartCount {a.restart_count} is below the previous {last.restart_count}"
        if a.clock <= last.clock and not (a.reset_count > last.reset_count and not a.safe):
            yield f"{q.bank} quote: clock {a.clock} ms does not move past the previous {last.clock} ms"


# ---- the verdict --------------------------------------------------------------------------------


def appraise(evidence: Evidence, ak: RsaKey | EcKey, nonce: bytes, *, policy: Policy | None = None,
             previous: Evidence | None = None) -> EvidenceVerdict:
    """Every evidence check, in catalogue order (see the module docstring for what each stands on)."""
    quotes = evidence.quotes
    checks = [
        _outcome(CheckId.EVIDENCE_SIGNATURE, filter(None, (_signature_problem(q, ak) for q in quotes)),
                 f"{count(len(quotes), 'quote')} signed by the {ak.kind} AK"),
        _outcome(CheckId.EVIDENCE_AK, _ak_problems(evidence, ak), "restricted signing key, fixedTPM, fixedParent"),
        _outcome(CheckId.EVIDENCE_MAGIC, (f"{q.bank} quote: magic 0x{q.attest.magic:08x}, not TPM_GENERATED"
                                          for q in quotes if q.attest.magic != TPM_GENERATED_VALUE),
                 "TPM_GENERATED_VALUE"),
        _outcome(CheckId.EVIDENCE_TYPE, (f"{q.bank} quote: attest type 0x{q.attest.type:04x}, not a quote"
                                         for q in quotes if q.attest.type != TpmSt.ATTEST_QUOTE),
                 "TPM_ST_ATTEST_QUOTE"),
        _outcome(CheckId.EVIDENCE_NONCE, (f"{q.bank} quote: extraData {q.attest.extra_data.hex()} is not the nonce"
                                          for q in quotes if q.attest.extra_data != nonce),
                 f"extraData is {nonce.hex()}"),
        _outcome(CheckId.EVIDENCE_SELECTION, (p for q in quotes for p in _selection_problems(q)),
                 "PCR17-22 in each quote's bank"),
        _outcome(CheckId.EVIDENCE_DIGEST, filter(None, map(_digest_problem, quotes)),
                 "reported PCR values hash to each pcrDigest"),
    ]
    quoted = {q.bank: q for q in quotes}
    try:
        if evidence.log is None:
            raise FormatError("drtm_log", "the host could not read its DRTM log (null): nothing explains the PCRs")
        log = parse_log(evidence.log)
    except FormatError as err:
        checks.append(Outcome(CheckId.LOG_VALID, CheckStatus.FAIL, str(err)))
        return EvidenceVerdict(checks, {})
    checks.append(Outcome(CheckId.LOG_VALID, CheckStatus.PASS, f"{log.format}, {count(len(log.events), 'event')}"))
    replayed, banks = _replay_checks(evidence, log, quoted)
    checks += replayed
    if policy is not None:  # issue 13's appraisal, on the PCR values the quotes vouch for
        from sld.posture import policy_check

        held = policy_check(policy, log, {bank: q.pcrs for bank, q in quoted.items()})
        checks.append(Outcome(held.id, held.status, held.detail))
    if previous is not None:
        checks.append(_outcome(CheckId.EVIDENCE_FRESHNESS, _freshness_problems(evidence, previous),
                               "clock, resetCount and restartCount move forward"))
    return EvidenceVerdict(checks, banks)
