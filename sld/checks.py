"""The catalogue of facts a verdict is made of.

Each check has a stable id used alike in JSON, metrics labels and journal fields, so an alert rule,
a dashboard and a log search all name the same thing. This module is data only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckInfo:
    id: str
    title: str
    doc: str


CATALOGUE: tuple[CheckInfo, ...] = (
    CheckInfo("txt.registers", "TXT registers readable",
              "The public config space (0xFED30000) or securityfs slaunch/txt/* decoded."),
    CheckInfo("txt.launched", "TXT measured launch",
              "STS.SENTER.DONE set and STS.SEXIT.DONE clear (SDG B.1.1). Never trusted alone: the tboot-devel "
              "captures show SENTER.DONE on machines that never launched."),
    CheckInfo("txt.errorcode", "ERRORCODE clean",
              "ERRORCODE is 0 or the SINIT success value 0xC0000001; anything else is an ACM, processor or "
              "Secure Launch (0xC00080xx) error."),
    CheckInfo("txt.reset", "no TXT reset pending", "ESTS.TXT_RESET clear (SDG B.1.2)."),
    CheckInfo("heap.valid", "TXT heap valid",
              "HEAP.BASE/SIZE non-zero and the four tables and their elements walk within bounds."),
    CheckInfo("slrt.valid", "SLRT valid", "OsMleData points at an SLRT with magic MTRD and a LOG_INFO entry."),
    CheckInfo("log.valid", "DRTM event log parses", "The log LOG_INFO (or securityfs) names parses record by record."),
    CheckInfo("log.digests", "event digests cover their data",
              "For event types whose digest is the hash of their data, every bank agrees."),
    CheckInfo("tpm.launched", "TPM saw a dynamic launch",
              "PCR17 is not all-ones: the DRTM sequence reset PCRs 17-22 since the TPM reset."),
    CheckInfo("tpm.extend", "deferred extends performed",
              "Events the Secure Launch stub logged between SLAUNCH_START and SLAUNCH_END but did not extend "
              "were extended exactly once (perform mode)."),
    CheckInfo("policy.match", "operator policy holds",
              "Known-good PCR values and required event digests from the policy file (--policy, [verify] policy)."),
    CheckInfo("pcr.match", "PCRs equal the replayed log", "PCR17-22 in every bank equal the replay of the log."),
)
CHECKS = {c.id: c for c in CATALOGUE}
