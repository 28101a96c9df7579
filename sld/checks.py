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
)
CHECKS: dict[CheckId, CheckInfo] = {c.id: c for c in CATALOGUE}
