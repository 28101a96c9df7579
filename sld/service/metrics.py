"""Prometheus metrics rendered at scrape time from the daemon's latest state (no mutated globals).

Names follow the Prometheus conventions (``_total`` counters, ``_info``, ``_timestamp_seconds``);
every label value comes from a fixed set (check ids, PCR numbers, bank names, TpmError kinds).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, exposition, start_http_server, write_to_textfile
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)

from sld import __version__
from sld.checks import CATALOGUE

if TYPE_CHECKING:
    from sld.service.daemon import Daemon

BACKLOG = 256
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
        yield GaugeMetricFamily("sld_verification_duration_seconds", "duration of the last verification",
                                value=verdict.duration_s)
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


def serve(registry: CollectorRegistry, listen: str, port: int, certfile: str = "", keyfile: str = "") -> object:
    """prometheus-client's own HTTP server (TLS when a cert/key is configured); returns the server.

    Its listen backlog is socketserver's default of 5, which resets connections when a fleet's
    scrapers and dashboards arrive together; the subclass it instantiates inherits a larger one.
    """
    exposition.ThreadingWSGIServer.request_queue_size = BACKLOG
    server, _thread = start_http_server(port, listen, registry, certfile=certfile or None, keyfile=keyfile or None)
    return server


def write_textfile(registry: CollectorRegistry, path: str) -> None:
    """For node_exporter's textfile collector (atomic tmp + rename, done by prometheus-client)."""
    write_to_textfile(path, registry)
