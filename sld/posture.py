"""Posture and appraisal facts of a verdict: what launched, judged against the policy and the platform's
own history (pure: the verdict engine passes in what was read, and the remembered SINIT record).

Each function returns one :class:`sld.checks.Check` whose id and severity the catalogue defines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sld.checks import Check, outcome
from sld.formats.eventlog import EventLog
from sld.formats.names import EVTYPE_HASH_START, EVTYPE_LCP_CONTROL_HASH, EVTYPE_STM_HASH
from sld.formats.registers import SINIT_SUCCESS, TxtRegisters
from sld.replay import extends
from sld.text import count
from sld.vocab import CheckId, CheckStatus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sld.appraisal.model import Policy
    from sld.formats.acm import Acm

# The "nothing there" measurements (SDG App. E): PolicyControl of no LCP is a zero u32, no STM a zero byte.
NO_LCP = bytes(4)
NO_STM = bytes(1)


def errorcode(regs: TxtRegisters) -> list[Check]:
    """ERRORCODE as this boot's fact, and as an earlier boot's when this boot launched anyway.

    ERRORCODE survives a soft reset (spec §1.2), and a Secure Launch failure resets the machine after
    writing it (spec §5), so a non-clean value while STS says launched (SENTER.DONE, SEXIT.DONE
    clear) was left by a previous boot: reported on its own, it does not fail this launch.
    """
    sts, err, value = regs.sts, regs.errorcode, regs["ERRORCODE"]
    clean = value in (0, SINIT_SUCCESS)
    words = f"0x{value:08x} {err.name}" + ("" if clean else f": {err.text}")
    evidence = {"ERRORCODE": value, "kind": err.kind, "name": err.name}
    launched = sts["senter_done"] and not sts["sexit_done"]
    if clean or not launched:
        return [Check(CheckId.TXT_ERRORCODE, outcome(CheckId.TXT_ERRORCODE, clean), words, evidence),
                Check(CheckId.TXT_PREVIOUS_ERROR, CheckStatus.PASS if clean else CheckStatus.SKIP,
                      "no error left in ERRORCODE" if clean else "this boot did not launch: the error is its own")]
    return [Check(CheckId.TXT_ERRORCODE, CheckStatus.PASS, f"this boot launched; {words} is from an earlier boot",
                  evidence),
            Check(CheckId.TXT_PREVIOUS_ERROR, outcome(CheckId.TXT_PREVIOUS_ERROR, False),
                  f"a previous boot failed its launch: {words} (survives a warm reset; a power cycle clears it)",
                  evidence)]


def _nothing_measured(log: EventLog, etype: int, nothing: bytes, check_id: CheckId, absent: str) -> Check:
    events = [e for e in log.events if e.type == etype and extends(e)]
    if not events:
        return Check(check_id, CheckStatus.SKIP, f"the log holds no {absent} event")
    hit = [(e.index, b) for e in events for b, d in e.digests.items() if bytes(d) == hashlib.new(b, nothing).digest()]
    detail = (f"event {hit[0][0]} ({events[0].type_name}) is the {hit[0][1]} hash of {nothing.hex()}: nothing there"
              if hit else f"event {events[0].index} ({events[0].type_name}) measures something")
    return Check(check_id, outcome(check_id, not hit), detail, {"events": [e.index for e in events]})


def lcp(log: EventLog) -> Check:
    """No launch control policy: LCP_CONTROL_HASH measured a zero u32 (SINIT launches any MLE)."""
    return _nothing_measured(log, EVTYPE_LCP_CONTROL_HASH, NO_LCP, CheckId.POSTURE_LCP, "LCP_CONTROL_HASH")


def stm(log: EventLog) -> Check:
    """No STM: STM_HASH measured a zero byte (SMM stays in the trusted computing base)."""
    return _nothing_measured(log, EVTYPE_STM_HASH, NO_STM, CheckId.POSTURE_STM, "STM_HASH")


def capped_check(capped_pcrs: Mapping[int, tuple[str, ...]]) -> Check:
    """Which banks are not measured in which PCRs (:func:`sld.replay.unmeasured`), one warning for all."""
    if not capped_pcrs:
        return Check(CheckId.PCR_CAPPED, CheckStatus.PASS, "no DRTM PCR is capped in any bank the log records")
    by_bank: dict[str, list[int]] = {}
    for pcr, banks in capped_pcrs.items():
        for b in banks:
            by_bank.setdefault(b, []).append(pcr)
    detail = "; ".join(f"{b} not measured in PCR{', PCR'.join(map(str, pcrs))} (capped)" for b, pcrs in by_bank.items())
    return Check(CheckId.PCR_CAPPED, outcome(CheckId.PCR_CAPPED, False), detail, {"not_measured": by_bank})


def policy_check(policy: Policy, log: EventLog, actual: Mapping[str, Mapping[int, bytes]]) -> Check:
    """Every part (and the older form's rules): the first findings in the detail, all in the evidence."""
    from sld.appraisal.check import appraise, legacy  # here: a verification without a policy never loads it

    findings = appraise(policy, log) + legacy(policy, log, actual)
    if not findings:
        return Check(CheckId.POLICY_MATCH, CheckStatus.PASS,
                     f"{policy.path}: every one of {count(len(policy.parts), 'part')} holds" if policy.parts else
                     f"{policy.path}: every expected PCR value and event holds")
    return Check(CheckId.POLICY_MATCH, outcome(CheckId.POLICY_MATCH, False), "; ".join(f.detail for f in findings),
                 {"parts": sorted({f.part for f in findings if f.part}), "findings": [f.evidence() for f in findings]})


def sinit_identity(log: EventLog, acm: Acm | None) -> dict[str, Any]:
    """What the downgrade check remembers of a SINIT: its HASH_START digests and, with a header, its age."""
    start = next((e for e in log.events if e.type == EVTYPE_HASH_START), None)
    record: dict[str, Any] = {"hash_start": {b: bytes(d).hex() for b, d in start.digests.items()} if start else {}}
    if acm is not None:
        record |= {"txt_svn": acm.txt_svn, "se_svn": acm.se_svn, "date": acm.date}
    return record


def sinit_policy(policy: Policy, log: EventLog, acm: Acm | None) -> Check:
    """The SINIT identity (HASH_START in the policy's list) and its SVNs against the policy's minimums."""
    start = next((e for e in log.events if e.type == EVTYPE_HASH_START), None)
    part = next((p for p in policy.parts if p.type == EVTYPE_HASH_START), None)
    if part is None and policy.sinit is None:
        return Check(CheckId.SINIT_POLICY, CheckStatus.SKIP, f"{policy.path} says nothing about the SINIT")
    problems = []
    if part is not None and (start is None or not any(bytes(d) in part.digests.get(b, ()) for b, d in
                                                      start.digests.items())):
        found = ", ".join(f"{b} {bytes(d).hex()}" for b, d in start.digests.items()) if start else "no HASH_START"
        problems.append(f"HASH_START is {found}, not a SINIT part {part.name!r} allows")
    want = policy.sinit
    if want is not None and want.header and acm is not None:
        for name, have, need in (("TxtSvn", acm.txt_svn, want.txt_svn), ("SeSvn", acm.se_svn, want.se_svn)):
            if have < need:
                problems.append(f"ACM header {name} {have} is below the policy's minimum {need}")
    basis = f"ACM header TxtSvn {acm.txt_svn}, {acm.date_text}" if acm else \
        "no ACM header at SINIT.BASE: identified by its HASH_START digest alone"
    return Check(CheckId.SINIT_POLICY, outcome(CheckId.SINIT_POLICY, not problems), "; ".join(problems) or
                 f"allowed ({basis})", {"acm_header": acm is not None})


def _age(record: Mapping[str, Any]) -> tuple[int, int] | None:
    return (record["txt_svn"], record["date"]) if "txt_svn" in record and "date" in record else None


def downgrade(current: Mapping[str, Any], last: Mapping[str, Any] | None) -> Check:
    """Older (TxtSvn, then date) than the SINIT this host last launched with is a downgrade."""
    if last is None:
        return Check(CheckId.SINIT_DOWNGRADE, CheckStatus.PASS, "no SINIT remembered yet: this one is the baseline")
    now, before = _age(current), _age(last)
    if now is None or before is None:
        same = current.get("hash_start") == last.get("hash_start")
        return Check(CheckId.SINIT_DOWNGRADE, CheckStatus.PASS if same else CheckStatus.SKIP,
                     "the same SINIT as last time" if same else "no ACM header to tell which SINIT is older")
    if now < before:
        return Check(CheckId.SINIT_DOWNGRADE, outcome(CheckId.SINIT_DOWNGRADE, False),
                     f"SINIT TxtSvn {now[0]} dated {now[1]:08x} is older than the one this host last launched "
                     f"(TxtSvn {before[0]} dated {before[1]:08x})", {"current": dict(current), "last": dict(last)})
    return Check(CheckId.SINIT_DOWNGRADE, CheckStatus.PASS, f"TxtSvn {now[0]}, not older than the last launch's "
                 f"{before[0]}")
