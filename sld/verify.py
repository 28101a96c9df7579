"""Facts -> verdict, and the perform-or-validate orchestration under the extend lock.

The comparison is pure (:func:`compare`): for every DRTM PCR it finds which prefix of that PCR's
events the TPM holds. Only a TPM that stopped inside the Secure Launch window (between SLAUNCH_START
and SLAUNCH_END) is resumed, and only with the events after that point, so a crash between any two
extends is repaired on the next run with no event extended twice; any other value is a mismatch
and nothing is extended.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import field, replace
from typing import Any, Protocol

from sld import posture
from sld.checks import Check
from sld.discover import Snapshot, discover
from sld.errors import TpmError
from sld.formats.eventlog import Event, EventLog
from sld.formats.names import SLAUNCH_END, SLAUNCH_START, hashlib_name
from sld.platform.source import Source
from sld.records import Record
from sld.replay import DRTM_PCRS, digest_mismatches, extends, hashable, prefix_states, unmeasured
from sld.statedir import read_record, write_record
from sld.text import count
from sld.vocab import CheckId, CheckStatus, Mode, PcrStatus, Result, SourceKind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sld.appraisal.model import Policy

SINIT_RECORD = "sinit"  # the state directory's record of the SINIT this host last launched with


def load_policy(path: str) -> Policy | None:
    """The appraisal policy a verification uses (``--policy``, ``[verify] policy``; none for ""), read
    anew at each call so an edited file counts: only a verification with one imports sld.appraisal."""
    if not path:
        return None
    from sld.appraisal.files import load

    return load(path)


class PcrDevice(Protocol):
    """What verification needs from a TPM (``sld.tpm.Tpm`` over any TCTI; the extend lock is keyed to it)."""

    tcti_string: str

    def banks(self) -> tuple[str, ...]: ...

    def read_pcrs(self, pcrs: Iterable[int], banks: Iterable[str]) -> dict[str, dict[int, bytes]]: ...

    def extend(self, pcr: int, digests: Mapping[str, bytes]) -> None: ...


class PcrState(Record):
    """Where one PCR stands against its events: ``held`` of them are in the TPM in every bank."""

    pcr: int
    status: PcrStatus
    events: tuple[int, ...]  # log indices of the events extended into this PCR
    held: int | None
    expected: dict[str, bytes]
    actual: dict[str, bytes]
    unmeasured: tuple[str, ...] = ()  # banks capped in this PCR: "not measured", never a match
    uncovered: tuple[str, ...] = ()  # banks the TPM allocates and the log has no digests for (pcr.banks)

    def bank_status(self, bank: str) -> PcrStatus:
        """This PCR in one bank: ``not-covered`` outside the log, ``not-measured`` when capped (spec §7.6)."""
        if bank in self.uncovered:
            return PcrStatus.NOT_COVERED
        if bank in self.unmeasured:
            return PcrStatus.NOT_MEASURED
        if self.status == PcrStatus.MATCH and self.expected.get(bank) != self.actual.get(bank):
            return PcrStatus.MISMATCH
        return self.status

    def bank_states(self, compared: Iterable[str]) -> dict[str, PcrStatus]:
        """Every allocated bank's status: the ``compared`` ones (allocated and logged), then those the log
        does not cover, so no bank is left out of the JSON, ``sld_pcr_match`` or the journal (pcr.banks)."""
        return {bank: self.bank_status(bank) for bank in (*compared, *self.uncovered)}

    @property
    def remaining(self) -> tuple[int, ...]:
        """The log indices still to extend (deferred events past ``held``): what perform mode extends, once."""
        return self.events[self.held :] if self.held is not None else ()


class Verdict(Record):
    """The outcome of one verification: the result and its one-line summary, every check in catalogue
    order, each DRTM PCR's state, and what was read. Frozen, because the daemon publishes it whole
    (sld.service.state) and the report, metrics, journal and quarantine all read the same value.
    """
    result: Result
    summary: str
    source: str
    mode: Mode
    checks: tuple[Check, ...]
    pcrs: tuple[PcrState, ...]
    banks: tuple[str, ...]
    extended: tuple[int, ...] = ()  # log indices extended by this run
    layout: str | None = None
    duration_s: float = 0.0
    registers: dict[str, int] = field(default_factory=dict)  # raw TXT register values read
    log_format: str = ""
    log_events: int = 0

    @property
    def exit_code(self) -> int:
        """``sld verify``'s exit code, from the result (``sld.vocab.Result.exit_code``: 0 verified, 1 failed, ...)."""
        return self.result.exit_code

    def check(self, check_id: CheckId) -> Check | None:
        """The check with this id, or None when the stage that makes it did not run (an earlier stage failed)."""
        return next((c for c in self.checks if c.id == check_id), None)


def window(log: EventLog) -> frozenset[int]:
    """Indices strictly between SLAUNCH_START and SLAUNCH_END (v7-v14 kernels; empty for v15+)."""
    start = next((e.index for e in log.events if e.type == SLAUNCH_START), None)
    if start is None:
        return frozenset()
    end = next((e.index for e in log.events if e.type == SLAUNCH_END and e.index > start), None)
    if end is None:
        return frozenset()
    return frozenset(range(start + 1, end))


def compare(log: EventLog, actual: Mapping[str, Mapping[int, bytes]], banks: Iterable[str]) -> tuple[PcrState, ...]:
    """Match every DRTM PCR the log touches (and PCR17 always) against the TPM's values (pure)."""
    banks = [b for b in banks if b in actual]
    inside = window(log)
    out = []
    for pcr in DRTM_PCRS:
        evs: list[Event] = [e for e in log.events if e.pcr == pcr and extends(e)]
        if not evs and pcr != 17:
            continue
        states = {b: prefix_states(log, b, pcr) for b in banks}
        now = {b: bytes(actual[b][pcr]) for b in banks}
        expected = {b: states[b][-1] for b in banks}
        indices = tuple(e.index for e in evs)
        if now and all(v == b"\xff" * len(v) for v in now.values()):
            out.append(PcrState(pcr, PcrStatus.NOT_LAUNCHED, indices, None, expected, now))
            continue
        first_window = next((i for i, e in enumerate(evs) if e.index in inside), len(evs))
        tail_in_window = all(e.index in inside for e in evs[first_window:])
        resumable = range(first_window, len(evs)) if tail_in_window else range(0)
        held_sets = [{j for j, s in enumerate(states[b]) if s == now[b] and (j == len(evs) or j in resumable)}
                     for b in banks]
        common = set.intersection(*held_sets) if held_sets else set()
        if len(evs) in common or not banks:
            out.append(PcrState(pcr, PcrStatus.MATCH, indices, len(evs), expected, now))
        elif common:
            # The largest common prefix: extending fewer events can only leave a mismatch, never a double extend.
            out.append(PcrState(pcr, PcrStatus.RESUMABLE, indices, max(common), expected, now))
        else:
            out.append(PcrState(pcr, PcrStatus.MISMATCH, indices, None, expected, now))
    return tuple(out)


def _platform_checks(snap: Snapshot) -> list[Check]:
    """Facts from the registers, heap, SLRT and log; each with its evidence."""
    checks = []
    regs = snap.registers
    if regs is None:
        checks.append(Check(CheckId.TXT_REGISTERS, CheckStatus.FAIL, str(snap.errors.get("registers", "no registers"))))
    else:
        sts = regs.sts
        launched = sts["senter_done"] and not sts["sexit_done"]
        checks.append(Check(CheckId.TXT_LAUNCHED, CheckStatus.PASS if launched else CheckStatus.FAIL,
                            "SENTER.DONE set, SEXIT.DONE clear" if launched else
                            f"STS 0x{regs['STS']:x}: senter_done={sts['senter_done']} sexit_done={sts['sexit_done']}",
                            {"STS": regs["STS"]}))
        checks += posture.errorcode(regs)
        checks.append(Check(CheckId.TXT_RESET, CheckStatus.FAIL if regs.ests["txt_reset"] else CheckStatus.PASS,
                            f"ESTS 0x{regs['ESTS']:x}",
                            {"ESTS": regs["ESTS"]}))
    for check_id, stage, what in ((CheckId.HEAP_VALID, "heap", snap.heap), (CheckId.SLRT_VALID, "slrt", snap.slrt)):
        if stage in snap.errors:
            checks.append(Check(check_id, CheckStatus.FAIL, str(snap.errors[stage])))
        elif what is not None:
            checks.append(Check(check_id, CheckStatus.PASS, _stage_detail(snap, stage)))
        elif snap.source_kind == SourceKind.SECURITYFS:
            checks.append(Check(check_id, CheckStatus.SKIP, "securityfs exports no heap or SLRT"))
    if "log" in snap.errors:
        checks.append(Check(CheckId.LOG_VALID, CheckStatus.FAIL, str(snap.errors["log"])))
    elif snap.log is not None:
        log = snap.log
        banks = ", ".join(log.banks)
        checks.append(Check(CheckId.LOG_VALID, CheckStatus.PASS,
                            f"{log.format}, {count(len(log.events), 'event')}, banks {banks}",
                            {"format": log.format, "events": len(log.events), "banks": list(log.banks)}))
        bad = digest_mismatches(log)
        checks.append(Check(CheckId.LOG_DIGESTS, CheckStatus.FAIL if bad else CheckStatus.PASS,
                            "; ".join(f"event {e.index} ({e.type_name}) {bank} digest is not H(data)"
                                      for e, bank in bad) or "every data-covering digest matches",
                            {"events": sorted({e.index for e, _ in bad})}))
    return checks


def _stage_detail(snap: Snapshot, stage: str) -> str:
    if stage == "heap" and snap.heap is not None:
        return f"0x{snap.heap.base:x} +0x{snap.heap.size:x}, OsMleData {snap.os_mle_layout} layout"
    assert snap.slrt is not None
    return f"0x{snap.slrt.address:x}, {snap.slrt.layout} layout, {count(len(snap.slrt.entries), 'entry', 'entries')}"


def _pcr_check(states: tuple[PcrState, ...], mode: Mode) -> Check:
    banks = list(dict.fromkeys(b for s in states for b in s.actual))  # the banks compared: allocated and logged
    if not banks:
        return Check(CheckId.PCR_MATCH, CheckStatus.FAIL, "no bank is both allocated in the TPM and in the log: "
                     "nothing was compared")
    blind = [s.pcr for s in states if s.unmeasured and set(s.unmeasured) >= set(s.actual)]
    if blind:
        return Check(CheckId.PCR_MATCH, CheckStatus.FAIL, f"PCR{', PCR'.join(map(str, blind))} not measured in any "
                     "bank (capped)", {"pcrs": blind})
    bad = [s for s in states if s.status != PcrStatus.MATCH]
    if not bad:
        return Check(CheckId.PCR_MATCH, CheckStatus.PASS,
                     f"PCR{','.join(str(s.pcr) for s in states)} equal the replay in {', '.join(banks)}")
    parts = []
    for s in bad:
        if s.status == PcrStatus.RESUMABLE:
            hint = "" if mode != Mode.VALIDATE else "; `sld verify --mode perform` extends them"
            parts.append(f"PCR{s.pcr}: {count(len(s.remaining), 'logged event')} not extended{hint}")
        else:
            differ = [b for b in s.expected if s.expected[b] != s.actual[b]]
            parts.append(f"PCR{s.pcr} {s.status} in {', '.join(differ)} (events {list(s.events)})")
    return Check(CheckId.PCR_MATCH, CheckStatus.FAIL, "; ".join(parts), {"pcrs": [s.pcr for s in bad]})


def _bank_check(allocated: tuple[str, ...], logged: tuple[str, ...]) -> Check:
    """pcr.banks: the TPM's active banks and the log's are the same set (see the catalogue for why it fails)."""
    uncovered = [b for b in allocated if b not in logged]
    unallocated = [b for b in logged if b not in allocated]
    unhashable = [b for b in allocated if b in logged and not hashable(b)]
    evidence = {"allocated": list(allocated), "log": list(logged), "uncovered": uncovered, "unallocated": unallocated,
                "unverifiable": unhashable}
    problems = [f"{b} is allocated in the TPM but not covered by the log: its PCR17-22 are not verified"
                for b in uncovered]
    problems += [f"{b} cannot be replayed here (this Python's OpenSSL has no {hashlib_name(b)}): its PCR17-22 are "
                 "not verified" for b in unhashable]
    problems += [f"the log records {b}, which the TPM does not allocate: those digests were extended nowhere"
                 for b in unallocated]
    if problems:
        return Check(CheckId.PCR_BANKS, CheckStatus.FAIL, "; ".join(problems), evidence)
    return Check(CheckId.PCR_BANKS, CheckStatus.PASS, f"allocated and logged: {', '.join(allocated)}", evidence)


def _perform(tpm: PcrDevice, log: EventLog, banks: tuple[str, ...]) -> tuple[tuple[PcrState, ...], list[int],
                                                                             Check]:
    """Under the lock: re-read (another extender may have finished), extend what remains, re-read."""
    from sld.lock import extend_lock  # here: a verification with nothing to extend never loads it

    done: list[int] = []
    with extend_lock(tpm.tcti_string):
        states = compare(log, tpm.read_pcrs(DRTM_PCRS, banks), banks)
        by_index = {e.index: e for e in log.events}
        # Log order across PCRs, as the kernel would have extended them.
        plan = sorted((i, s.pcr) for s in states if s.status == PcrStatus.RESUMABLE for i in s.remaining)
        try:
            for index, pcr in plan:
                tpm.extend(pcr, {b: d for b, d in by_index[index].digests.items() if b in banks})
                done.append(index)
        except TpmError as err:
            after = compare(log, tpm.read_pcrs(DRTM_PCRS, banks), banks)
            return after, done, Check(CheckId.TPM_EXTEND, CheckStatus.FAIL,
                                      f"{err}; extended {count(len(done), 'event')} before it",
                                      {"kind": err.kind, "extended": done})
        after = compare(log, tpm.read_pcrs(DRTM_PCRS, banks), banks)
    return after, done, Check(CheckId.TPM_EXTEND, CheckStatus.PASS,
                              f"extended {count(len(done), 'deferred event')} exactly once",
                              {"extended": done})


def verify(source: Source, tpm: PcrDevice, **kwargs: Any) -> Verdict:
    """Read the platform and the TPM, perform deferred extends if allowed, and decide."""
    return verify_snapshot(source, tpm, **kwargs)[0]


def verify_snapshot(source: Source, tpm: PcrDevice, *, mode: Mode = Mode.AUTO, policy: Policy | None = None,
                    state_dir: str | None = None) -> tuple[Verdict, Snapshot]:
    """:func:`verify`, also returning what was read (``sld policy create`` describes that launch).

    With ``state_dir`` the SINIT is compared with the one this host last launched with, and a verified
    launch's SINIT is remembered there (the daemon, or an explicit ``sld verify --state-dir``).
    """
    t0 = time.monotonic()
    mode = Mode(mode)  # a str from argparse or the config becomes the vocabulary word (ValueError: a bug)
    snap = discover(source)
    checks = _platform_checks(snap)
    states: tuple[PcrState, ...] = ()
    extended: list[int] = []
    banks: tuple[str, ...] = ()
    identity: dict[str, Any] = {}
    if snap.log is not None:
        allocated = tpm.banks()
        banks = tuple(b for b in allocated if b in snap.log.banks and hashable(b))  # pcr.banks names the others
        states = compare(snap.log, tpm.read_pcrs(DRTM_PCRS, banks), banks)
        launched = not any(s.status == PcrStatus.NOT_LAUNCHED for s in states if s.pcr == 17)
        checks.append(Check(CheckId.TPM_LAUNCHED, CheckStatus.PASS if launched else CheckStatus.FAIL,
                            "PCR17 was reset by a dynamic launch" if launched else
                            "PCR17 is all-ones: no dynamic launch since the TPM reset"))
        if mode != Mode.VALIDATE and any(s.status == PcrStatus.RESUMABLE for s in states):
            states, extended, extend_check = _perform(tpm, snap.log, banks)
            checks.append(extend_check)
        capped = unmeasured(snap.log, banks)
        uncovered = tuple(b for b in allocated if b not in banks)
        states = tuple(replace(s, unmeasured=capped.get(s.pcr, ()), uncovered=uncovered) for s in states)
        if launched:
            checks += [_pcr_check(states, mode), _bank_check(allocated, snap.log.banks),
                       posture.capped_check(capped), posture.lcp(snap.log), posture.stm(snap.log)]
        if policy is not None:
            checks += [posture.policy_check(policy, snap.log, _policy_pcrs(tpm, policy, states, banks)),
                       posture.sinit_policy(policy, snap.log, snap.acm)]
        if state_dir is not None and launched:
            identity = posture.sinit_identity(snap.log, snap.acm)
            checks.append(posture.downgrade(identity, read_record(state_dir, SINIT_RECORD)))
    result, summary = _decide(checks)
    if identity and result == Result.VERIFIED and state_dir is not None:
        write_record(state_dir, SINIT_RECORD, identity)
    regs = {k: v for k, v in snap.registers.values.items() if isinstance(v, int)} if snap.registers else {}
    verdict = Verdict(result, summary, snap.source_name, mode, tuple(checks), states, banks, tuple(extended),
                      snap.slrt.layout if snap.slrt else None, time.monotonic() - t0, regs,
                      snap.log.format if snap.log else "", len(snap.log.events) if snap.log else 0)
    return verdict, snap


def _policy_pcrs(tpm: PcrDevice, policy: Policy, states: tuple[PcrState, ...],
                 banks: tuple[str, ...]) -> dict[str, dict[int, bytes]]:
    """The PCR values an older-form policy names: those already read, and any others read now."""
    actual = {b: {s.pcr: s.actual[b] for s in states if b in s.actual} for b in banks}
    missing = {b: [p for p in policy.pcrs[b] if p not in actual.get(b, {})] for b in policy.pcrs}
    if any(missing.values()):
        extra = tpm.read_pcrs(sorted({p for ps in missing.values() for p in ps}), list(policy.pcrs))
        for b, values in extra.items():
            actual.setdefault(b, {}).update(values)
    return actual


def _decide(checks: list[Check]) -> tuple[Result, str]:
    """An error anywhere fails; no launch is "not-launched", never "mismatch"; verified needs every fact."""
    status = {c.id: c.status for c in checks}
    failed = [c for c in checks if c.status == CheckStatus.FAIL]
    if status.get(CheckId.TXT_ERRORCODE) == CheckStatus.FAIL or status.get(CheckId.TXT_REGISTERS) == CheckStatus.FAIL:
        first = next(c for c in failed if c.id in (CheckId.TXT_ERRORCODE, CheckId.TXT_REGISTERS))
        return Result.FAILED, f"{first.title}: {first.detail}"
    no_heap = CheckId.HEAP_VALID not in status and status.get(CheckId.TXT_LAUNCHED) is not None
    if status.get(CheckId.TXT_LAUNCHED) == CheckStatus.FAIL or status.get(CheckId.TPM_LAUNCHED) == CheckStatus.FAIL or \
            (no_heap and CheckId.LOG_VALID not in status):
        c = next((c for c in failed if c.id in (CheckId.TXT_LAUNCHED, CheckId.TPM_LAUNCHED)), None)
        return Result.NOT_LAUNCHED, f"not a secure-launched platform: {c.detail if c else 'HEAP.BASE is 0'}"
    if failed:
        return Result.FAILED, f"{failed[0].title}: {failed[0].detail}"
    if status.get(CheckId.PCR_MATCH) != CheckStatus.PASS:
        return Result.FAILED, "no event log to verify the PCRs against"
    warned = [c.title for c in checks if c.status == CheckStatus.WARN]
    return Result.VERIFIED, "dynamic launch verified: PCRs equal the replayed DRTM log" + \
        (f" (warnings: {'; '.join(warned)})" if warned else "")


def verify_source(source_spec: str, tpm: PcrDevice, **kwargs: Any) -> Verdict:
    """Open ``source_spec`` (``--source``), verify, close."""
    return verify_source_snapshot(source_spec, tpm, **kwargs)[0]


def verify_source_snapshot(source_spec: str, tpm: PcrDevice, **kwargs: Any) -> tuple[Verdict, Snapshot]:
    """:func:`verify_source` and what it read."""
    from sld.platform.source import open_source

    with open_source(source_spec) as source:
        return verify_snapshot(source, tpm, **kwargs)
