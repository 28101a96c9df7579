"""The catalogue of facts a verdict is made of.

Each check has a stable id (:class:`sld.vocab.CheckId`) used alike in JSON, metrics labels and journal
fields, so an alert rule, a dashboard and a log search all name the same thing, and a severity that
says whether its failure fails the verdict or only warns. This module is data only (like fwupd's HSI
test list).
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from sld.records import Record
from sld.vocab import CheckId, CheckStatus, Severity


class CheckInfo(Record):
    """One catalogue entry: what the check establishes, and what its failure does to the verdict."""

    id: CheckId
    title: str
    doc: str
    severity: Severity = Severity.FAIL


CATALOGUE: tuple[CheckInfo, ...] = (
    CheckInfo(CheckId.TXT_REGISTERS, "TXT registers readable",
              "The public config space (0xFED30000) or securityfs slaunch/txt/* decoded."),
    CheckInfo(CheckId.TXT_LAUNCHED, "TXT measured launch",
              "STS.SENTER.DONE set and STS.SEXIT.DONE clear (SDG B.1.1). Never trusted alone: the tboot-devel "
              "captures show SENTER.DONE on machines that never launched."),
    CheckInfo(CheckId.TXT_ERRORCODE, "ERRORCODE clean",
              "ERRORCODE is 0 or the SINIT success value 0xC0000001; anything else is an ACM, processor or "
              "Secure Launch (0xC00080xx) error."),
    CheckInfo(CheckId.TXT_RESET, "no TXT reset pending", "ESTS.TXT_RESET clear (SDG B.1.2)."),
    CheckInfo(CheckId.HEAP_VALID, "TXT heap valid",
              "HEAP.BASE/SIZE non-zero and the four tables and their elements walk within bounds."),
    CheckInfo(CheckId.SLRT_VALID, "SLRT valid", "OsMleData points at an SLRT with magic MTRD and a LOG_INFO entry."),
    CheckInfo(CheckId.LOG_VALID, "DRTM event log parses",
              "The log LOG_INFO (or securityfs) names parses record by record."),
    CheckInfo(CheckId.LOG_DIGESTS, "event digests cover their data",
              "For event types whose digest is the hash of their data, every bank agrees."),
    CheckInfo(CheckId.TPM_LAUNCHED, "TPM saw a dynamic launch",
              "PCR17 is not all-ones: the DRTM sequence reset PCRs 17-22 since the TPM reset."),
    CheckInfo(CheckId.TPM_EXTEND, "deferred extends performed",
              "Events the Secure Launch stub logged between SLAUNCH_START and SLAUNCH_END but did not extend "
              "were extended exactly once (perform mode)."),
    CheckInfo(CheckId.POLICY_MATCH, "launch approved by the policy",
              "Every part of the appraisal policy (--policy, [verify] policy) is in the log once, in order within "
              "its PCR, with an allowed digest in every bank, and no event is unknown to it (unless allow_extra); "
              "the older form's golden PCR values and required event digests hold."),
    CheckInfo(CheckId.PCR_MATCH, "PCRs equal the replayed log",
              "PCR17-22 equal the replay of the log in each bank the TPM allocates and the log records (pcr.banks "
              "fails any other bank)."),
    CheckInfo(CheckId.PCR_BANKS, "log covers exactly the allocated banks",
              "Every PCR bank the TPM allocates (TPM2_GetCapability TPM_CAP_PCRS) has digests in the log, and every "
              "bank the log records is allocated. The log is the one account of what was extended into each bank: "
              "one it does not cover (a v7-v11 or v15 kernel hashes SHA-1 and SHA-256 only, spec §7.6, on a TPM "
              "with SHA-384 active) holds PCR17-22 values nothing explains and the launched code's measurements "
              "need not be in, so a secret sealed to that bank or a quote of it proves nothing; its rows read "
              "\"not-covered\", never a match. Severity fail, the rule of the remote "
              "verifier: evidence with such a bank fails evidence.replay (a quoted bank the log has no digests "
              "for) or evidence.banks (a logged bank not quoted), and the host's advisory verdict fails here."),
    # sld verify --evidence (sld.evidence.check): a quote another machine made, checked without TXT or a TPM
    CheckInfo(CheckId.EVIDENCE_SIGNATURE, "quotes signed by the AK",
              "Each TPMS_ATTEST verifies under the AK the verifier trusts (--ak): RSASSA-PKCS1-v1_5 or ECDSA "
              "P-256, SHA-256 (TPM 2.0 Part 3 TPM2_Quote)."),
    CheckInfo(CheckId.EVIDENCE_AK, "the AK is a restricted TPM key",
              "The evidence's TPM2B_PUBLIC holds the trusted key, is restricted, sign, fixedTPM and fixedParent, "
              "and its Name is the one reported (Part 1 §16)."),
    CheckInfo(CheckId.EVIDENCE_MAGIC, "attest made by a TPM",
              "TPMS_ATTEST.magic is TPM_GENERATED_VALUE: a restricted key signs that only over data the TPM "
              "itself produced (Part 2 §6.2)."),
    CheckInfo(CheckId.EVIDENCE_TYPE, "attest is a quote", "TPMS_ATTEST.type is TPM_ST_ATTEST_QUOTE (Part 2 §6.9)."),
    CheckInfo(CheckId.EVIDENCE_NONCE, "quote bound to the nonce",
              "TPMS_ATTEST.extraData is the verifier's nonce (--nonce): the quote was made for this request."),
    CheckInfo(CheckId.EVIDENCE_SELECTION, "PCR17-22 quoted",
              "Each quote selects its bank's PCR17-22 and reports a value for every PCR it selects."),
    CheckInfo(CheckId.EVIDENCE_DIGEST, "reported PCRs are the quoted ones",
              "TPMS_QUOTE_INFO.pcrDigest is the hash of the reported PCR values in selection order."),
    CheckInfo(CheckId.EVIDENCE_BANKS, "every bank quoted",
              "Every bank the DRTM log records and every bank the host reports allocated has a quote: a "
              "verifier that accepts any one bank accepts a host whose other banks were never measured."),
    CheckInfo(CheckId.EVIDENCE_REPLAY, "quoted PCRs equal the replayed log",
              "PCR17-22 of every quoted bank equal the replay of the DRTM log in that bank."),
    CheckInfo(CheckId.EVIDENCE_FRESHNESS, "newer than the previous evidence",
              "Against --previous (earlier evidence of the same AK): resetCount and restartCount never go back "
              "and clock moves forward, unless the TPM rebooted after an unorderly shutdown and says so (safe "
              "NO) (TPMS_CLOCK_INFO, Part 2 §10.11.1), so old evidence cannot be replayed."),
    CheckInfo(CheckId.TXT_PREVIOUS_ERROR, "no error left by a previous boot",
              "ERRORCODE survives a warm reset (SDG B.1.3; spec §1.2): a Secure Launch or ACM error while this boot "
              "launched (SENTER.DONE, PCRs reset) was left by an earlier boot's failed launch.", Severity.WARN),
    CheckInfo(CheckId.POSTURE_LCP, "a launch control policy is in force",
              "LCP_CONTROL_HASH is not the hash of a zero u32: with no LCP the SINIT launches any MLE "
              "(SDG App. E, LCP).", Severity.WARN),
    CheckInfo(CheckId.POSTURE_STM, "an STM confines SMM",
              "STM_HASH is not the hash of a zero byte: with no SMI transfer monitor, SMM stays in the TCB "
              "(SDG App. E).", Severity.WARN),
    CheckInfo(CheckId.SINIT_POLICY, "SINIT ACM allowed by the policy",
              "The HASH_START digest is one the policy's sinit part lists, and the ACM header at SINIT.BASE "
              "(SDG A.1) has at least the policy's TxtSvn and SeSvn."),
    CheckInfo(CheckId.SINIT_DOWNGRADE, "SINIT ACM not downgraded",
              "The SINIT is not older (TxtSvn, then date) than the one this host last launched with, as remembered "
              "in the state directory (default /var/lib/sld)."),
    CheckInfo(CheckId.PCR_CAPPED, "no logged bank capped",
              "No bank the log records is capped: a digest of 0x01 then zeros (a bank the code could not hash, "
              "spec §7.6) or a CAP_VALUE event makes that bank's PCR \"not measured\", never a match.", Severity.WARN),
)
CHECKS: dict[CheckId, CheckInfo] = {c.id: c for c in CATALOGUE}


class Check(Record):
    """One fact of a verdict; a failed check of warn severity has status ``warn`` (:func:`outcome`)."""

    id: CheckId
    status: CheckStatus
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """The catalogue's title for this id: one wording in JSON, metrics help and the journal."""
        return CHECKS[self.id].title


def outcome(check_id: CheckId, ok: bool) -> CheckStatus:
    """``pass``, or what failing this check means: ``fail`` or, for a warn-severity check, ``warn``."""
    if ok:
        return CheckStatus.PASS
    return CheckStatus.WARN if CHECKS[check_id].severity == Severity.WARN else CheckStatus.FAIL
