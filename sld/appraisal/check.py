"""A DRTM log against a policy: which parts are missing, duplicated, out of order or carry a digest the
policy does not allow, and which events no part names (pure).

Within each DRTM PCR the k-th event of a kind (PCR, type, Secure Launch text) is matched with the
k-th part of that kind; measurement order is compared only within a PCR, since each PCR is its own
hash chain (TCG PC Client PFP §3.3.4). A digest of 0x01 then zeros is a capped bank (spec §7.6:
banks the code could not hash): "not measured", never a match, whatever the policy lists. Every bank
an event records is appraised: a bank its part lists no values for fails ("sha384 is not in the
policy"), since a relying party may seal to or quote that bank's PCRs (TCG PC Client PFP §10.2.1: the
log records every active bank); only a capped digest there is left to the pcr.capped posture check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from enum import StrEnum
from typing import Any

from sld.appraisal.create import event_text
from sld.appraisal.model import Part, Policy
from sld.formats.eventlog import Event, EventLog
from sld.formats.names import event_type_name
from sld.records import Record
from sld.replay import DRTM_PCRS, capped, extends


class Problem(StrEnum):
    """How a launch departs from a policy (JSON ``problem``, and the word in each failure's text)."""

    MISSING = "missing"
    DUPLICATED = "duplicated"
    OUT_OF_ORDER = "out-of-order"
    DIGEST = "digest-not-allowed"
    BANK = "bank-not-in-policy"
    NOT_MEASURED = "not-measured"
    UNKNOWN = "unknown-event"
    PCR_VALUE = "pcr-value"
    REQUIRED_EVENT = "required-event"


class Finding(Record):
    """One way the launch departs from the policy, with the digests in full (never abbreviated)."""

    problem: Problem
    part: str | None  # None: an event no part names, or an older-form rule
    pcr: int | None
    event: int | None = None  # log index
    type_name: str = ""
    text: str | None = None
    expected: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    found: Mapping[str, str] = field(default_factory=dict)

    @property
    def detail(self) -> str:
        """One line naming the part, the event (index, PCR, type, text) and both digests in full."""
        what = f"part {self.part}" if self.part else "an event no part names" if self.event is not None else "policy"
        where = f"PCR{self.pcr}" if self.pcr is not None else ""
        label = f"{self.type_name} {self.text!r}" if self.text else self.type_name
        event = f"event {self.event} ({where} {label})" if self.event is not None else f"{where} {label}".strip()
        unlisted = "is not in the policy" if self.problem == Problem.BANK else "expected nothing"
        digests = "; ".join(f"{bank} expected {' or '.join(self.expected[bank])}, found {self.found.get(bank, 'none')}"
                            if bank in self.expected else f"{bank} {unlisted}, found {self.found[bank]}"
                            for bank in dict.fromkeys((*self.expected, *self.found)))
        return f"{what}: {self.problem} at {event}" + (f": {digests}" if digests else "")

    def evidence(self) -> dict[str, Any]:
        """The finding as JSON values (the check's evidence)."""
        return {"problem": str(self.problem), "part": self.part, "pcr": self.pcr, "event": self.event,
                "type": self.type_name, "text": self.text, "expected": {b: list(v) for b, v in self.expected.items()},
                "found": dict(self.found)}


def _key(ev: Event) -> tuple[int, int, str | None]:
    return (ev.pcr, ev.type, event_text(ev))


def _finding(problem: Problem, part: Part | None, ev: Event | None, pcr: int, banks: tuple[str, ...] = ()) -> Finding:
    expected = {b: tuple(d.hex() for d in part.digests[b]) for b in part.digests} if part else {}
    found = {b: bytes(d).hex() for b, d in ev.digests.items() if not banks or b in banks} if ev else {}
    if part and not ev:
        return Finding(problem, part.name, pcr, None, event_type_name(part.type), part.text, expected)
    assert ev is not None
    return Finding(problem, part.name if part else None, pcr, ev.index, ev.type_name, event_text(ev),
                   {b: v for b, v in expected.items() if not banks or b in banks}, found)


def _digests(part: Part, ev: Event) -> list[Finding]:
    out = []
    for bank, raw in ev.digests.items():
        digest = bytes(raw)
        if bank not in part.digests:
            if not capped(digest):  # a capped bank measured nothing: pcr.capped says so, per bank
                out.append(_finding(Problem.BANK, part, ev, ev.pcr, (bank,)))
        elif capped(digest):
            out.append(_finding(Problem.NOT_MEASURED, part, ev, ev.pcr, (bank,)))
        elif digest not in part.digests[bank]:
            out.append(_finding(Problem.DIGEST, part, ev, ev.pcr, (bank,)))
    return out


def _pcr(policy: Policy, log: EventLog, pcr: int) -> list[Finding]:
    parts = [p for p in policy.parts if p.pcr == pcr]
    events = [e for e in log.events if e.pcr == pcr and extends(e)]
    by_key: dict[tuple[int, int, str | None], list[Part]] = {}
    for p in parts:
        by_key.setdefault(p.key, []).append(p)
    seen: dict[tuple[int, int, str | None], int] = {}
    out: list[Finding] = []
    matched: list[tuple[Part, Event]] = []
    for ev in events:
        key = _key(ev)
        k = seen.get(key, 0)
        seen[key] = k + 1
        candidates = by_key.get(key, [])
        if k < len(candidates):
            matched.append((candidates[k], ev))
        elif candidates:
            out.append(_finding(Problem.DUPLICATED, candidates[-1], ev, pcr))
        elif not policy.allow_extra:
            out.append(_finding(Problem.UNKNOWN, None, ev, pcr))
    for key, candidates in by_key.items():
        out.extend(_finding(Problem.MISSING, p, None, pcr) for p in candidates[seen.get(key, 0):])
    position = {p.name: i for i, p in enumerate(parts)}
    latest = -1
    for part, ev in matched:  # in log order
        if position[part.name] < latest:
            out.append(_finding(Problem.OUT_OF_ORDER, part, ev, pcr))
        latest = max(latest, position[part.name])
        out.extend(_digests(part, ev))
    return out


def appraise(policy: Policy, log: EventLog) -> tuple[Finding, ...]:
    """Every departure of ``log`` from ``policy``'s parts, PCR by PCR; empty when the launch is approved."""
    if not policy.parts:
        return ()
    return tuple(f for pcr in DRTM_PCRS for f in _pcr(policy, log, pcr))


def legacy(policy: Policy, log: EventLog, actual: Mapping[str, Mapping[int, bytes]]) -> tuple[Finding, ...]:
    """The older form: golden PCR values, and events that must appear somewhere with these digests."""
    out = []
    for bank, values in policy.pcrs.items():
        for pcr, want in values.items():
            got = actual.get(bank, {}).get(pcr)
            out += [] if got == want else [Finding(Problem.PCR_VALUE, None, pcr, None, f"{bank} value",
                                                   None, {bank: (want.hex(),)}, {bank: got.hex() if got else "none"})]
    for want_ev in policy.events:
        if not any((want_ev.pcr is None or e.pcr == want_ev.pcr) and (want_ev.type is None or e.type == want_ev.type)
                   and all(e.digests.get(b) == d for b, d in want_ev.digests.items()) for e in log.events):
            out.append(Finding(Problem.REQUIRED_EVENT, None, want_ev.pcr, None,
                               event_type_name(want_ev.type) if want_ev.type is not None else "event",
                               None, {b: (d.hex(),) for b, d in want_ev.digests.items()}))
    return tuple(out)
