"""The catalogue of facts a verdict is made of.

Each check has a stable id (:class:`sld.vocab.CheckId`) used alike in JSON, metrics labels and journal
fields, so an alert rule, a dashboard and a log search all name the same thing, and a severity that
says whether its failure fails the verdict or only warns. This module is data only (like fwupd's HSI
test list).
"""

from __future__ import annotations

from dataclasses import dataclass

from sld.vocab import CheckId, Severity


@dataclass(frozen=True)
class CheckInfo:
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
    CheckInfo(CheckId.POLICY_MATCH, "operator policy holds",
              "Known-good PCR values and required event digests from the policy file (--policy, [verify] policy)."),
    CheckInfo(CheckId.PCR_MATCH, "PCRs equal the replayed log", "PCR17-22 in every bank equal the replay of the log."),
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
    CheckInfo(CheckId.EVIDENCE_MEASURED, "no capped bank",
              "A bank capped by EVTYPE_CAP_VALUE or a 0x01.. digest holds no measurement: it is named as not "
              "measured, never counted as a match.", Severity.WARN),
    CheckInfo(CheckId.EVIDENCE_FRESHNESS, "newer than the previous evidence",
              "Against --previous: resetCount and restartCount never go back and clock moves forward "
              "(TPMS_CLOCK_INFO, Part 2 §10.11.1), so old evidence cannot be replayed."),
)
CHECKS: dict[CheckId, CheckInfo] = {c.id: c for c in CATALOGUE}
