"""Prometheus metrics rendered at scrape time from the daemon's latest state (no mutated globals).

Names follow the Prometheus conventions (``_total`` counters, ``_info``, ``_timestamp_seconds``);
every label value comes from a fixed set (check ids, PCR numbers, bank names, TpmError kinds).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from sld.service.daemon import Daemon

STATES = ("starting", "running", "degraded", "failed", "stopping")


class SldCollector:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        d = self.daemon
        stats = d.stats
        info = InfoMetricFamily("sld_build", "sld build information")
        info.add_metric([], {"version": __version__})
        yield info
        state = StateSetMetricFamily("sld_daemon_state", "daemon state")
        state.add_metric([], {s: s == d.state for s in STATES})
        yield state
        for name, doc, value in (
            ("sld_verifications_total", "verifications run", stats["verifications"]),
            ("sld_verification_failures_total", "verifications whose verdict was not verified", stats["failures"]),
            ("sld_pcr_changes_total", "PCRs that changed after they were verified", stats["pcr_changes"]),
        ):
            yield CounterMetricFamily(name.removesuffix("_total"), doc, value=value)
        tpm_errors = CounterMetricFamily("sld_tpm_errors", "TPM errors by kind", labels=["kind"])
        for kind in ("locality", "retry", "unavailable", "command"):
            tpm_errors.add_metric([kind], stats["tpm_errors"].get(kind, 0))
        yield tpm_errors
        extends = CounterMetricFamily("sld_extends_performed", "deferred events extended by sld", labels=["pcr"])
        for pcr, n in sorted(stats["extends"].items()):
            extends.add_metric([str(pcr)], n)
        yield extends
        yield GaugeMetricFamily("sld_quarantine_active", "network quarantine installed (0/1)",
                                value=int(d.quarantined))
        yield CounterMetricFamily("sld_quarantine_changes", "quarantine applied or lifted",
                                  value=d.quarantine.changes if d.quarantine else 0)
        if stats["last_success"]:
            yield GaugeMetricFamily("sld_last_success_timestamp_seconds", "end of the last passing verification",
                                    value=stats["last_success"])
        verdict = d.verdict
        if verdict is None:
            return
        yield GaugeMetricFamily("sld_launch_verified", "1 when the last verdict was verified",
                                value=int(verdict.result == "verified"))
        yield GaugeMetricFamily("sld_last_verification_timestamp_seconds", "end of the last verification",
                                value=stats["last_verification"])
        from sld.service.daemon import DURATION_BUCKETS

        buckets = [(f"{b:g}", n) for b, n in zip(DURATION_BUCKETS, stats["durations"], strict=True)]
        yield HistogramMetricFamily("sld_verification_duration_seconds", "verification durations",
                                    buckets=[*buckets, ("+Inf", stats["duration_count"])],
                                    sum_value=stats["duration_sum"])
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
            if check.id in status and status[check.id] != "skip":
                passed.add_metric([check.id], int(status[check.id] == "pass"))
        yield passed
        match = GaugeMetricFamily("sld_pcr_match", "1 when the PCR equals the replayed log", labels=["pcr", "bank"])
        for s in verdict.pcrs:
            for bank in verdict.banks:
                ok = s.status == "match" and s.expected.get(bank) == s.actual.get(bank)
                match.add_metric([str(s.pcr), bank], int(ok))
        yield match
        if "ERRORCODE" in verdict.registers:
            yield GaugeMetricFamily("sld_txt_errorcode", "raw TXT ERRORCODE register",
                                    value=verdict.registers["ERRORCODE"] & 0xFFFFFFFF)


def registry_for(daemon: Daemon) -> CollectorRegistry:
    """sld's own registry (not the global one): exactly what the daemon exports, plus process_*."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SldCollector(daemon))
    ProcessCollector(registry=registry)
    return registry


def write_textfile(registry: CollectorRegistry, path: str) -> None:
    """For node_exporter's textfile collector (atomic tmp + rename, done by prometheus-client)."""
    write_to_textfile(path, registry)
