"""The pure heart of perform-or-validate: which prefix of each PCR's events the TPM holds."""

from __future__ import annotations

import pytest

from sld.formats.eventlog import parse_log
from sld.replay import DRTM_PCRS, prefix_states
from sld.sim.builder import build_platform
from sld.verify import compare, window

BANKS = ("sha1", "sha256")


def log_of(name: str = "partial-extend", layout: str = "v12"):
    return parse_log(build_platform(name, layout).log)


def tpm_at(log, held: dict[int, int]) -> dict[str, dict[int, bytes]]:
    """PCR values with the first ``held[pcr]`` events of each PCR extended (all of them by default)."""
    out = {}
    for bank in BANKS:
        out[bank] = {}
        for pcr in DRTM_PCRS:
            states = prefix_states(log, bank, pcr)
            out[bank][pcr] = states[held.get(pcr, len(states) - 1)]
    return out


def test_window_is_between_the_markers() -> None:
    log = log_of()
    inside = window(log)
    assert {log.events[i].type for i in inside} == {0x502} and len(inside) == 20
    assert window(log_of("clean", "v16")) == frozenset()  # v15+ kernels extend themselves: no markers


def test_finished_launch_matches() -> None:
    log = log_of()
    states = compare(log, tpm_at(log, {}), BANKS)
    assert [(s.pcr, s.status) for s in states] == [(17, "match"), (18, "match")]


def before_window(log, pcr: int) -> int:
    """How many of ``pcr``'s extending events precede the Secure Launch window (the SINIT's)."""
    return sum(1 for e in log.events if e.pcr == pcr and e.type not in (3, 0x503, 0x504) and e.index < min(window(log)))


@pytest.mark.parametrize("held", [0, 1, 5])
def test_tpm_stopped_inside_the_window_is_resumable_from_there(held: int) -> None:
    log = log_of()
    n17, n18 = before_window(log, 17), before_window(log, 18)
    assert (n17, n18) == (7, 3)  # the SINIT events of sld.sim.scenarios.sinit_events
    states = {s.pcr: s for s in compare(log, tpm_at(log, {17: n17, 18: n18 + held}), BANKS)}
    assert states[17].status == "resumable" and states[17].held == n17
    assert states[17].remaining and all(log.events[i].type == 0x502 for i in states[17].remaining)
    assert states[18].status == "resumable" and states[18].held == n18 + held
    assert len(states[18].remaining) == len(states[18].events) - n18 - held


def test_tpm_before_the_sinit_events_is_a_mismatch_not_a_resume() -> None:
    log = log_of()
    states = {s.pcr: s for s in compare(log, tpm_at(log, {17: 1}), BANKS)}
    assert states[17].status == "mismatch" and states[17].remaining == ()


def test_all_ones_is_not_launched() -> None:
    log = log_of()
    ff = {b: {p: b"\xff" * (20 if b == "sha1" else 32) for p in DRTM_PCRS} for b in BANKS}
    assert {s.status for s in compare(log, ff, BANKS)} == {"not-launched"}


def test_banks_disagreeing_is_a_mismatch() -> None:
    log = log_of()
    mixed = tpm_at(log, {})
    mixed["sha1"][18] = prefix_states(log, "sha1", 18)[5]
    states = {s.pcr: s for s in compare(log, mixed, BANKS)}
    assert states[18].status == "mismatch"
