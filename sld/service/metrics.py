"""Prometheus metrics rendered at scrape time from the daemon's latest state (no mutated globals).

Names follow the Prometheus conventions (``_total`` counters, ``_info``, ``_timestamp_seconds``);
every label value comes from a fixed set (check ids, PCR numbers, bank names, TpmError kinds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector, write_to_textfile
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)

from sld import __version__
from sld.checks import CATALOGUE
from sld.formats.registers import E2STS_BITS, ESTS_BITS, STS_BITS
from sld.service.state import DaemonStatus
from sld.vocab import CheckStatus, DaemonState, PcrStatus, TpmErrorKind, choices

if TYPE_CHECKING:
    from sld.verify import Verdict


class SldCollector:
    """Renders one published DaemonStatus per scrape (``status`` returns it; ``clock`` gives wall time),
    the way client_python's ProcessCollector takes ``proc=``: inputs injected, nothing read behind them.

    ``sld_launch_verified`` follows DaemonStatus.launch_verified: 1 only for a current verified verdict,
    0 while degraded (the verdict is then stale; ``sld_last_verdict_age_seconds`` says how stale).
    """

    def __init__(self, status: Callable[[], DaemonStatus], clock: Callable[[], float] = time.time) -> None:
        self.status = status
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        """The metric families of one status value (prometheus_client's Collector protocol)."""
        s = self.status()
        yield from _daemon(s)
        age = s.verdict_age(self.clock())
        if s.verdict is not None and age is not None:
            yield GaugeMetricFamily("sld_launch_verified", "1 when the current verdict is verified (0 when stale)",
                                    value=int(s.launch_verified))
            yield GaugeMetricFamily("sld_last_verdict_age_seconds", "seconds since the last verdict was made",
                                    value=age)
            yield GaugeMetricFamily("sld_last_verification_timestamp_seconds", "end of the last verification",
                                    value=s.verdict_time)
            yield from _verdict(s.verdict)


def _daemon(s: DaemonStatus) -> Iterator[Metric]:
    """What the service itself did: state, counters, durations, quarantine."""
    info = InfoMetricFamily("sld_build", "sld build information")
    info.add_metric([], {"version": __version__})
    yield info
    state = StateSetMetricFamily("sld_daemon_state", "daemon state")
    state.add_metric([], {name: name == s.state for name in choices(DaemonState)})
    yield state
    for name, doc, value in (
        ("sld_verifications_total", "verifications run", s.verifications),
        ("sld_verification_failures_total", "verifications whose verdict was not verified", s.failures),
        ("sld_pcr_changes_total", "PCRs that changed after they were verified", s.pcr_changes),
    ):
        yield CounterMetricFamily(name.removesuffix("_total"), doc, value=value)
    yield _counts("sld_tpm_errors", "TPM errors by kind", "kind", s.tpm_errors, choices(TpmErrorKind))
    yield _counts("sld_output_errors", "outputs that could not be written (textfile)", "output", s.output_errors,
                  ("textfile",))
    yield _counts("sld_extends_performed", "deferred events extended by sld", "pcr", s.extends, sorted(s.extends))
    yield GaugeMetricFamily("sld_quarantine_active", "network quarantine installed (0/1)",
                            value=int(s.quarantine_active))
    yield CounterMetricFamily("sld_quarantine_changes", "quarantine applied or lifted", value=s.quarantine_changes)
    yield GaugeMetricFamily("sld_quarantine_foreign_filters", "foreign tc filters that run before sld's quarantine "
                            "filters and may let traffic past them", value=len(s.quarantine_overtaking))
    if s.last_success:
        yield GaugeMetricFamily("sld_last_success_timestamp_seconds", "end of the last passing verification",
                                value=s.last_success)
    if s.verdict is not None:
        h = s.durations
        buckets = [(f"{b:g}", n) for b, n in zip(h.bounds, h.counts, strict=True)]
        yield HistogramMetricFamily("sld_verification_duration_seconds", "verification durations",
                                    buckets=[*buckets, ("+Inf", h.count)], sum_value=h.total)


def _counts(name: str, doc: str, label: str, counts: Mapping[Any, int], keys: Sequence[Any]) -> CounterMetricFamily:
    """A counter family with one sample per key (every key listed, 0 when never counted)."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for key in keys:
        family.add_metric([str(key)], counts.get(key, 0))
    return family


def _verdict(verdict: Verdict) -> Iterator[Metric]:
    """What the last verdict found (kept while stale, so a dashboard still shows which check failed)."""
    platform = InfoMetricFamily("sld_platform", "what was verified", labels=[])
    platform.add_metric([], {"log_format": verdict.log_format, "layout": verdict.layout or "",
                             "didvid": f"0x{verdict.registers.get('DIDVID', 0):x}"})
    yield platform
    yield GaugeMetricFamily("sld_event_log_events", "records in the DRTM event log", value=verdict.log_events)
    flags = GaugeMetricFamily("sld_txt_flag", "TXT status register bits (0/1)", labels=["register", "flag"])
    for register, table in (("STS", STS_BITS), ("ESTS", ESTS_BITS), ("E2STS", E2STS_BITS)):
        if register in verdict.registers:
            for flag, bit in table.items():
                flags.add_metric([register, flag], verdict.registers[register] >> bit & 1)
    yield flags
    passed = GaugeMetricFamily("sld_check_passed", "1 when a verdict check passed", labels=["check"])
    status = {c.id: c.status for c in verdict.checks}
    for check in CATALOGUE:
        if status.get(check.id, CheckStatus.SKIP) != CheckStatus.SKIP:
            passed.add_metric([check.id], int(status[check.id] == CheckStatus.PASS))
    yield passed
    match = GaugeMetricFamily("sld_pcr_match", "1 when the PCR equals the replayed log; state is the bank's PCR "
                              "status (not-covered: allocated in the TPM, absent from the log)",
                              labels=["pcr", "bank", "state"])
    measured = GaugeMetricFamily("sld_pcr_measured", "0 when the bank is capped in this PCR: not measured",
                                 labels=["pcr", "bank"])
    for p in verdict.pcrs:
        for bank, state in p.bank_states(verdict.banks).items():
            match.add_metric([str(p.pcr), bank, state], int(state == PcrStatus.MATCH))
        for bank in verdict.banks:
            measured.add_metric([str(p.pcr), bank], int(p.bank_status(bank) != PcrStatus.NOT_MEASURED))
    yield match
    yield measured
    if "ERRORCODE" in verdict.registers:
        yield GaugeMetricFamily("sld_txt_errorcode", "raw TXT ERRORCODE register",
                                value=verdict.registers["ERRORCODE"] & 0xFFFFFFFF)


def registry_for(status: Callable[[], DaemonStatus]) -> CollectorRegistry:
    """sld's own registry (not the global one): exactly what the daemon exports, plus process_*."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SldCollector(status))
    ProcessCollector(registry=registry)
    return registry


def write_textfile(registry: CollectorRegistry, path: str) -> None:
    """For node_exporter's textfile collector (atomic tmp + rename, done by prometheus-client)."""
    write_to_textfile(path, registry)
