"""Replaying an event log into the PCR values a TPM should hold: pure functions of the log.

DRTM PCRs 17-22 start from zero (the launch reset, spec §6); PCR0 starts from the locality a
StartupLocality event names; EV_NO_ACTION, PCRMAPPING (PCR 0xFF) and the SLAUNCH_START/END markers
are never extended.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from sld.formats.eventlog import EV_NO_ACTION, SLAUNCH_END, SLAUNCH_START, EventLog

DRTM_PCRS = tuple(range(17, 23))
NUM_PCRS = 24
STARTUP_LOCALITY = b"StartupLocality\x00"


class Logged(Protocol):
    pcr: int
    type: int


def extends(event: Logged) -> bool:
    """Whether an event changes a PCR at all (a parsed Event or one the simulator is about to log)."""
    return event.type not in (EV_NO_ACTION, SLAUNCH_START, SLAUNCH_END) and event.pcr < NUM_PCRS


def initial_value(log: EventLog, bank: str, pcr: int) -> bytes:
    size = hashlib.new(bank).digest_size
    if pcr == 0:
        for ev in log.events:
            if ev.type == EV_NO_ACTION and ev.pcr == 0 and ev.data[:16] == STARTUP_LOCALITY and len(ev.data) >= 17:
                return bytes(size - 1) + ev.data[16:17]
    return bytes(size)


@dataclass(frozen=True)
class Replay:
    """Expected values per bank and PCR, and the evidence behind them."""

    values: dict[str, dict[int, bytes]]
    events_by_pcr: dict[int, tuple[int, ...]]  # PCR -> indices of the events extended into it
    missing: tuple[tuple[int, str], ...] = field(default=())  # (event index, bank) lacking a digest


def replay(log: EventLog, *, pcrs: Iterable[int] | None = None) -> Replay:
    wanted = set(range(NUM_PCRS) if pcrs is None else pcrs)
    banks = [b for b in log.banks if b in hashlib.algorithms_available]
    fed: dict[int, list[int]] = {}
    missing: list[tuple[int, str]] = []
    values = {b: {p: initial_value(log, b, p) for p in sorted(wanted)} for b in banks}
    hashers = {b: getattr(hashlib, b, None) or (lambda data, b=b: hashlib.new(b, data)) for b in banks}
    for ev in log.events:
        if ev.pcr not in wanted or not extends(ev):
            continue
        fed.setdefault(ev.pcr, []).append(ev.index)
        for bank in banks:
            digest = ev.digests.get(bank)
            if digest is None:
                missing.append((ev.index, bank))
                continue
            values[bank][ev.pcr] = hashers[bank](values[bank][ev.pcr] + digest).digest()
    touched = {p for p in fed} | ({0} & wanted)
    values = {b: {p: v for p, v in vals.items() if p in touched or p in DRTM_PCRS} for b, vals in values.items()}
    return Replay(values, {p: tuple(i) for p, i in fed.items()}, tuple(missing))


def prefix_states(log: EventLog, bank: str, pcr: int) -> list[bytes]:
    """The PCR value before its first extending event, then after each one, in log order.

    One state per extending event of ``pcr`` (an event lacking ``bank`` leaves the state as it was),
    so index ``j`` means "the first ``j`` events are in the TPM" in every bank alike. The verification
    engine matches the TPM against these to tell a finished launch from one that stopped (or crashed)
    part-way through its extends.
    """
    state = initial_value(log, bank, pcr)
    states = [state]
    for ev in log.events:
        if ev.pcr == pcr and extends(ev):
            if bank in ev.digests:
                state = hashlib.new(bank, state + ev.digests[bank]).digest()
            states.append(state)
    return states
