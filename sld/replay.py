"""Replaying an event log into the PCR values a TPM should hold: pure functions of the log.

DRTM PCRs 17-22 start from zero (the launch reset, spec §6); PCR0 starts from the locality a
StartupLocality event names (TCG PC Client PFP §10.4.5.3); EV_NO_ACTION, PCRMAPPING (PCR 0xFF) and
the SLAUNCH_START/END markers are never extended. :class:`PcrChains` takes the records a batch at a
time, so a streamed log (``sld inspect log --pcrs``) is replayed as it is walked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from functools import partial

from sld.formats.eventlog import Event, EventLog, startup_locality
from sld.formats.names import (
    DATA_DIGEST_TYPES,
    EV_NO_ACTION,
    EVTYPE_CAP_VALUE,
    SLAUNCH_END,
    SLAUNCH_START,
    hashlib_name,
)

TYPE_CHECKING = False  # typing, like dataclasses, costs a parse-and-replay process more than it does
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Logged(Protocol):
        @property
        def pcr(self) -> int: ...

        @property
        def type(self) -> int: ...


DRTM_PCRS = tuple(range(17, 23))
NUM_PCRS = 24


NOT_EXTENDED = frozenset({EV_NO_ACTION, SLAUNCH_START, SLAUNCH_END})


def extends(event: Logged) -> bool:
    """Whether an event changes a PCR at all (a parsed Event or one the simulator is about to log)."""
    return event.type not in NOT_EXTENDED and event.pcr < NUM_PCRS


def hashable(bank: str) -> bool:
    """Whether this Python can replay ``bank``; one it cannot is reported as not verifiable, never dropped."""
    return hashlib_name(bank) in hashlib.algorithms_available


def _hasher(bank: str) -> Callable[[bytes], Any]:
    return getattr(hashlib, bank, None) or partial(hashlib.new, hashlib_name(bank))


def _reset(bank: str, pcr: int, locality: int | None) -> bytes:
    """A PCR's value before its first extend: zero, or PCR0 holding the startup locality."""
    size = hashlib.new(hashlib_name(bank)).digest_size
    return bytes(size - 1) + bytes([locality]) if pcr == 0 and locality is not None else bytes(size)


class PcrChains:
    """The PCR values of ``banks`` as records are added in log order (the banks hashlib can compute).

    PCR0's extends are kept until the end, since its reset value depends on a StartupLocality event
    wherever the log has it; every other PCR is one running value per bank. ``add`` is a closure over
    the running values, given a batch of records (a whole parsed log, or a streamed log's next few thousand).
    """

    __slots__ = ("banks", "pcrs", "states", "pcr0", "seen", "add")

    def __init__(self, banks: Iterable[str], pcrs: Iterable[int] = range(NUM_PCRS)) -> None:
        self.banks = [(bank, _hasher(bank)) for bank in banks if hashable(bank)]
        self.pcrs = frozenset(p for p in pcrs if 0 <= p < NUM_PCRS)
        self.states = {bank: {p: _reset(bank, p, None) for p in self.pcrs} for bank, _ in self.banks}
        self.pcr0: list[Event] = []
        self.seen: set[int] = set()
        self.add = self._adder()

    def _adder(self) -> Callable[[Iterable[Event]], None]:
        pcrs, pcr0, seen, skip = self.pcrs, self.pcr0, self.seen, NOT_EXTENDED
        banks = [(bank, new, self.states[bank]) for bank, new in self.banks]

        def add(events: Iterable[Event]) -> None:
            """Records in log order: one loop over a batch, no call per record (the hashing is its cost)."""
            for ev in events:
                pcr = ev.pcr
                if pcr not in pcrs or ev.type in skip:
                    if pcr == 0 and ev.type == EV_NO_ACTION:
                        pcr0.append(ev)  # perhaps the StartupLocality event
                    continue
                if pcr == 0:
                    pcr0.append(ev)
                    seen.add(0)
                    continue
                if pcr not in seen:
                    seen.add(pcr)
                digests = ev.digests
                for bank, new, values in banks:
                    digest = digests.get(bank)
                    if digest is not None:  # a record lacking the bank leaves it as it was
                        values[pcr] = new(values[pcr] + digest).digest()

        return add

    def values(self) -> dict[str, dict[int, bytes]]:
        """Per bank, the PCRs that were extended, and PCR0 and 17-22 whatever the log holds."""
        locality = startup_locality(self.pcr0)
        shown = sorted(p for p in self.pcrs if p in self.seen or p == 0 or p in DRTM_PCRS)
        out: dict[str, dict[int, bytes]] = {}
        for bank, new in self.banks:
            values = out[bank] = {p: self.states[bank][p] for p in shown}
            if 0 in values:
                values[0] = _chain(new, _reset(bank, 0, locality), (e.digests.get(bank) for e in self.pcr0
                                                                    if e.type not in NOT_EXTENDED))[-1]
        return out


def _chain(new: Callable[[bytes], Any], state: bytes, digests: Iterable[bytes | None]) -> list[bytes]:
    """The value before, then after each digest (a None, a record lacking the bank, changes nothing)."""
    states = [state]
    for digest in digests:
        if digest is not None:
            state = new(state + digest).digest()
        states.append(state)
    return states


class Replay:
    """Expected values per bank and PCR, and the evidence behind them."""

    __slots__ = ("values", "events_by_pcr", "missing")

    def __init__(self, values: dict[str, dict[int, bytes]], events_by_pcr: dict[int, tuple[int, ...]],
                 missing: tuple[tuple[int, str], ...] = ()) -> None:
        self.values = values
        self.events_by_pcr = events_by_pcr  # PCR -> indices of the events extended into it
        self.missing = missing  # (event index, bank) lacking a digest


def replay(log: EventLog, *, pcrs: Iterable[int] | None = None) -> Replay:
    """The values ``pcrs`` (default all 24) should hold per bank, which events went into each, and which
    of those lack a bank's digest (so verification can say a bank is not covered by the log)."""
    wanted = [p for p in (range(NUM_PCRS) if pcrs is None else pcrs) if 0 <= p < NUM_PCRS]
    chains = PcrChains(log.banks, wanted)
    chains.add(log.events)
    values = chains.values()
    extended = [ev for ev in log.events if ev.pcr in chains.pcrs and extends(ev)]
    by_pcr = {p: tuple(ev.index for ev in extended if ev.pcr == p) for p in dict.fromkeys(wanted)}
    missing = tuple((ev.index, bank) for ev in extended for bank in values if bank not in ev.digests)
    return Replay(values, {p: i for p, i in by_pcr.items() if i}, missing)


def capped(digest: bytes) -> bool:
    """0x01 followed by zeros: a bank the measuring code could not hash (spec §6, §7.6)."""
    return len(digest) > 1 and digest[0] == 1 and not any(digest[1:])


def unmeasured(log: EventLog, banks: tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    """PCR -> the banks it is not measured in: a capped digest, or a CAP_VALUE event, among its events.

    Such a bank replays like any other, but holds no measurement: "not measured", never a match.
    """
    out: dict[int, tuple[str, ...]] = {}
    for pcr in DRTM_PCRS:
        evs = [e for e in log.events if e.pcr == pcr and extends(e)]
        hit = tuple(b for b in banks if any(e.type == EVTYPE_CAP_VALUE or capped(bytes(e.digests.get(b, b"")))
                                            for e in evs))
        if hit:
            out[pcr] = hit
    return out


def extended(bank: str, pcr: int, digests: Iterable[bytes]) -> bytes:
    """PCR ``pcr`` of ``bank`` from its reset value after extending ``digests`` in order (TPM2_PCR_Extend):
    the value a policy's allowed digests predict."""
    return _chain(_hasher(bank), _reset(bank, pcr, None), digests)[-1]


def prefix_states(log: EventLog, bank: str, pcr: int) -> list[bytes]:
    """The PCR value before its first extending event, then after each one, in log order.

    One state per extending event of ``pcr`` (an event lacking ``bank`` leaves the state as it was),
    so index ``j`` means "the first ``j`` events are in the TPM" in every bank alike. The verification
    engine matches the TPM against these to tell a finished launch from one that stopped (or crashed)
    part-way through its extends.
    """
    digests = (ev.digests.get(bank) for ev in log.events if ev.pcr == pcr and extends(ev))
    return _chain(_hasher(bank), _reset(bank, pcr, log.startup_locality), digests)


def digest_mismatches(log: EventLog) -> list[tuple[Event, str]]:
    """Events of DATA_DIGEST_TYPES whose digest in some bank is not the hash of their data (with or without
    one trailing NUL, as writers differ): a fact for the verdict, not part of the log's format."""
    hashers = {bank: _hasher(bank) for bank in log.banks if hashable(bank)}  # a record's banks are the log's
    bad = []
    for ev in log.events:
        if ev.type not in DATA_DIGEST_TYPES:
            continue
        forms = {ev.data, ev.data[:-1] if ev.data.endswith(b"\0") else ev.data}
        for bank, digest in ev.digests.items():
            if (h := hashers.get(bank)) is not None and all(h(f).digest() != digest for f in forms):
                bad.append((ev, bank))
    return bad
