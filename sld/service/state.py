"""The daemon's published state: one frozen value, replaced whole under the daemon's lock.

The collector (``sld.service.metrics``), the control socket and ``sld status`` read this value and
nothing else of the daemon, so none of them can see a half-updated verdict or counter, and none of
them imports the daemon (client_python's collectors take their inputs the same way: a callable).

The staleness rule lives here, once: a verdict is *current* while the daemon is running or failed
(the last verification produced it); while starting, degraded or stopping it is *stale* (the last
attempt produced no verdict), and a stale verdict is never reported as a pass: ``launch_verified``
is True only for a current ``verified`` verdict (``sld_launch_verified``, ``sld status``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sld.records import Record
from sld.vocab import CheckStatus, DaemonState, Result

if TYPE_CHECKING:
    from sld.verify import Verdict

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RESULT_STATE = {Result.VERIFIED: DaemonState.RUNNING, Result.FAILED: DaemonState.FAILED,
                Result.NOT_LAUNCHED: DaemonState.FAILED}
CURRENT = frozenset((DaemonState.RUNNING, DaemonState.FAILED))


def counted(counts: Mapping[Any, int], key: Any, by: int = 1) -> Mapping[Any, int]:
    """A new read-only mapping with ``key`` counted ``by`` more (the old one is left as it was)."""
    return MappingProxyType({**counts, key: counts.get(key, 0) + by})


def _empty() -> Mapping[Any, int]:
    return MappingProxyType({})


class Histogram(Record):
    """Cumulative counts per upper bound, the way Prometheus exposes histograms (``le`` buckets)."""

    bounds: tuple[float, ...] = DURATION_BUCKETS
    counts: tuple[int, ...] = (0,) * len(DURATION_BUCKETS)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> Histogram:
        """A new histogram with ``value`` counted in every bucket whose bound it does not exceed."""
        counts = tuple(n + (value <= bound) for bound, n in zip(self.bounds, self.counts, strict=True))
        return Histogram(self.bounds, counts, self.total + value, self.count + 1)


class DaemonStatus(Record):
    """Everything the daemon publishes; wall-clock times are ``time.time()`` seconds, 0 for never.

    ``verdict`` is the last verdict produced, kept while degraded (then stale, see the module doc);
    ``error`` is the current reason the daemon is degraded, or why an output failed ('' when none).
    """

    state: DaemonState = DaemonState.STARTING
    verdict: Verdict | None = None
    verdict_time: float = 0.0
    error: str = ""
    error_time: float = 0.0
    error_exit_code: int = 0
    verifications: int = 0
    failures: int = 0
    pcr_changes: int = 0
    last_success: float = 0.0
    tpm_errors: Mapping[str, int] = field(default_factory=_empty)
    extends: Mapping[int, int] = field(default_factory=_empty)
    output_errors: Mapping[str, int] = field(default_factory=_empty)
    durations: Histogram = field(default_factory=Histogram)
    quarantine_active: bool = False
    quarantine_changes: int = 0
    quarantine_overtaking: tuple[str, ...] = ()  # foreign tc filters that run before sld's (may bypass it)

    @property
    def stale(self) -> bool:
        """The verdict is not what the last attempt found (the daemon could not verify since)."""
        return self.verdict is not None and self.state not in CURRENT

    @property
    def launch_verified(self) -> bool:
        """A current verdict that verified: the one rule behind ``sld_launch_verified`` and ``sld status``."""
        return self.verdict is not None and not self.stale and self.verdict.result == Result.VERIFIED

    @property
    def exit_code(self) -> int:
        """What ``sld status`` exits with: 0 running; failed: the verdict's code (1, or 3 not launched);
        degraded: the error's (3 no source readable, 4 TPM unavailable or stuck, 5 the extend lock could not
        be taken: as ``sld verify`` exits); 4 starting or stopping."""
        if self.state == DaemonState.RUNNING:
            return 0
        if self.state == DaemonState.FAILED and self.verdict is not None:
            return self.verdict.exit_code
        if self.state == DaemonState.DEGRADED and self.error_exit_code in (3, 5):
            return self.error_exit_code
        return 4

    def verdict_age(self, now: float) -> float | None:
        """Seconds since the verdict was made, or None without one."""
        return max(0.0, now - self.verdict_time) if self.verdict else None


def failed_checks(verdict: Verdict) -> tuple[str, ...]:
    """The ids of ``verdict``'s failed checks, in verdict order: the same ids as JSON ``checks``,
    ``sld_check_passed{check}`` and the journal's SLD_FAILED_CHECKS."""
    return tuple(c.id for c in verdict.checks if c.status == CheckStatus.FAIL)
