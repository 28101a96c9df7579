"""Replaying an event log into the PCR values a TPM should hold: pure functions of the log.

DRTM PCRs 17-22 start from zero (the launch reset, spec §6); PCR0 starts from the locality a
StartupLocality event names; EV_NO_ACTION, PCRMAPPING (PCR 0xFF) and the SLAUNCH_START/END markers
are never extended.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from functools import partial

from sld.formats.eventlog import EventLog, Head
from sld.formats.names import EV_NO_ACTION, SLAUNCH_END, SLAUNCH_START

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


def initial_value(log: EventLog, bank: str, pcr: int) -> bytes:
    size = hashlib.new(bank).digest_size
    if pcr == 0 and log.startup_locality is not None:
        return bytes(size - 1) + bytes([log.startup_locality])
    return bytes(size)


def _chains(log: EventLog, wanted: Iterable[int]) -> dict[int, tuple[list[int], list[Head]]]:
    """Per PCR: the indices and heads of the records extended into it, in log order.

    Works on the record heads, never building Events (a 100,000-event log is replayed in a fraction
    of the time). The leading records (the crypto-agile header, EV_NO_ACTION) never extend.
    """
    recs = log.records
    groups: dict[int, tuple[list[int], list[Head]]] = {p: ([], []) for p in wanted if 0 <= p < NUM_PCRS}
    skip = NOT_EXTENDED
    for i, head in enumerate(recs.heads, recs.first_index):
        group = groups.get(head[0])
        if group is not None and head[1] not in skip:
            group[0].append(i)
            group[1].append(head)
    return groups


def _hasher(bank: str) -> Callable[[bytes], Any]:
    return getattr(hashlib, bank, None) or partial(hashlib.new, bank)


class Replay:
    """Expected values per bank and PCR, and the evidence behind them."""

    __slots__ = ("values", "events_by_pcr", "missing")

    def __init__(self, values: dict[str, dict[int, bytes]], events_by_pcr: dict[int, tuple[int, ...]],
                 missing: tuple[tuple[int, str], ...] = ()) -> None:
        self.values = values
        self.events_by_pcr = events_by_pcr  # PCR -> indices of the events extended into it
        self.missing = missing  # (event index, bank) lacking a digest


def replay(log: EventLog, *, pcrs: Iterable[int] | None = None) -> Replay:
    chains = _chains(log, range(NUM_PCRS) if pcrs is None else pcrs)
    banks = [b for b in log.banks if b in hashlib.algorithms_available]
    missing: list[tuple[int, str]] = []
    values: dict[str, dict[int, bytes]] = {b: {} for b in banks}
    for bank in banks:
        new = _hasher(bank)
        digest_of = log.records.digest_of(bank)
        for pcr, (indices, heads) in sorted(chains.items()):
            if not (heads or pcr == 0 or pcr in DRTM_PCRS):
                continue
            if None in map(digest_of, heads):
                missing += [(i, bank) for i, head in zip(indices, heads, strict=True) if digest_of(head) is None]
            state = initial_value(log, bank, pcr)
            for digest in filter(None, map(digest_of, heads)):  # skips None (lacking); digests are never empty
                state = new(state + digest).digest()
            values[bank][pcr] = state
    missing.sort(key=lambda m: (m[0], banks.index(m[1])))  # log order, then the log's bank order
    return Replay(values, {p: tuple(i) for p, (i, _) in chains.items() if i}, tuple(missing))


def prefix_states(log: EventLog, bank: str, pcr: int) -> list[bytes]:
    """The PCR value before its first extending event, then after each one, in log order.

    One state per extending event of ``pcr`` (an event lacking ``bank`` leaves the state as it was),
    so index ``j`` means "the first ``j`` events are in the TPM" in every bank alike. The verification
    engine matches the TPM against these to tell a finished launch from one that stopped (or crashed)
    part-way through its extends.
    """
    _, heads = _chains(log, (pcr,)).get(pcr, ([], []))
    new = _hasher(bank)
    state = initial_value(log, bank, pcr)
    states = [state]
    for digest in map(log.records.digest_of(bank), heads):
        if digest is not None:
            state = new(state + digest).digest()
        states.append(state)
    return states
