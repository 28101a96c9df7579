"""``sld daemon``: verify at start-up and every interval, tell systemd the truth, serve metrics and
the control socket, and report PCRs that change after they were verified.

States: starting -> running (verified) | failed (verification failed) | degraded (a source or the TPM
is unavailable for now, retried every interval) -> stopping. READY=1 is sent after the first
verification completes (pass or fail), WATCHDOG=1 only from the main loop when it is not stuck.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import threading
import time
from dataclasses import replace
from typing import Any

from sld import config as configuration
from sld.errors import ConfigError, SldError, TpmError
from sld.policy import load as load_policy
from sld.service import journal
from sld.service.journal import event, log
from sld.verify import Verdict, verify_source

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RESULT_STATE = {"verified": "running", "failed": "failed", "not-launched": "failed"}


def notify(message: str) -> None:
    """sd_notify through systemd-python (a no-op without NOTIFY_SOCKET)."""
    from systemd import daemon as sd

    sd.notify(message)


class Daemon:
    def __init__(self, config: configuration.Config) -> None:
        self.config = config
        self.state = "starting"
        self.verdict: Verdict | None = None
        self.stats: dict[str, Any] = {"verifications": 0, "failures": 0, "pcr_changes": 0, "tpm_errors": {},
                                      "extends": {}, "last_success": 0.0, "last_verification": 0.0,
                                      "last_error": "", "durations": [0] * len(DURATION_BUCKETS),
                                      "duration_sum": 0.0, "duration_count": 0}
        self._tpm: Any = None
        self._lock = threading.Lock()  # one verification at a time (main loop, control socket)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._verified_pcrs: dict[tuple[int, str], bytes] = {}
        self._servers: list[Any] = []
        self.quarantine: Any = None

    @property
    def quarantined(self) -> bool:
        return bool(self.quarantine and self.quarantine.active)

    # --- verification ------------------------------------------------------------------------------

    def _open_tpm(self) -> Any:
        if self._tpm is None:
            from sld.tpm import Tpm

            self._tpm = Tpm(self.config.tpm.tcti, locality=self.config.tpm.locality,
                            timeout=self.config.tpm.timeout)
        return self._tpm

    def verify_now(self) -> Verdict | None:
        """One verification; a TPM or source failure makes the daemon degraded, not dead."""
        with self._lock:
            self.stats["verifications"] += 1
            try:
                policy = load_policy(self.config.verify.policy) if self.config.verify.policy else None
                verdict = verify_source(self.config.source.spec, self._open_tpm(), mode=self.config.verify.mode,
                                        lock=self.config.verify.lock, policy=policy)
            except SldError as err:
                self._degraded(err)
                return None
            except Exception as err:  # a bug must not kill the watchdog-supervised loop; systemd sees STATUS
                log.exception("internal error during verification")
                self._degraded(SldError(f"internal error: {type(err).__name__}: {err}"))
                return None
            self._record(verdict)
            return verdict

    def _degraded(self, err: SldError) -> None:
        self.stats["failures"] += 1
        self.stats["last_error"] = str(err)
        if isinstance(err, TpmError):
            self.stats["tpm_errors"][err.kind] = self.stats["tpm_errors"].get(err.kind, 0) + 1
            event("tpm-error", f"TPM unavailable: {err}", logging.WARNING, kind=err.kind)
            if self._tpm is not None:
                self._tpm.close()
            self._tpm = None  # reopen next time: swtpm or the device may come back
        else:
            log.warning("source unavailable: %s", err)
        self.state = "degraded"
        notify(f"STATUS=degraded: {err}")
        self._enforce("degraded")

    def _enforce(self, state: str) -> None:
        if self.quarantine is None:
            return
        try:
            done = self.quarantine.decide(state)
        except SldError as err:
            log.error("quarantine: %s", err)
            return
        if done:
            interfaces = ", ".join(self.config.quarantine.interfaces)
            level = logging.WARNING if self.quarantine.active else logging.INFO
            event("quarantine", f"quarantine {done} on {interfaces} ({state})", level, action=done, trigger=state)

    def _record(self, verdict: Verdict) -> None:
        now = time.time()
        for i, bound in enumerate(DURATION_BUCKETS):
            self.stats["durations"][i] += verdict.duration_s <= bound
        self.stats["duration_sum"] += verdict.duration_s
        self.stats["duration_count"] += 1
        self.stats["last_verification"] = now
        for index in verdict.extended:
            pcr = next(s.pcr for s in verdict.pcrs if index in s.events)
            self.stats["extends"][pcr] = self.stats["extends"].get(pcr, 0) + 1
        if verdict.extended:
            event("extended", f"extended {len(verdict.extended)} deferred events", count=len(verdict.extended))
        self._pcr_changes(verdict)
        if verdict.result == "verified":
            self.stats["last_success"] = now
        else:
            self.stats["failures"] += 1
        changed = self.verdict is None or self.verdict.result != verdict.result
        self.verdict = verdict
        self.state = RESULT_STATE[verdict.result]
        level = logging.INFO if verdict.result == "verified" else logging.ERROR
        if changed:
            event(verdict.result, f"{verdict.result}: {verdict.summary}", level, verdict=verdict.result,
                  source=verdict.source)
        notify(f"STATUS={verdict.result}: {verdict.summary}")
        self._enforce(verdict.result)

    def _pcr_changes(self, verdict: Verdict) -> None:
        """A PCR that moves after it was verified is an event of its own, never a silent re-baseline."""
        for s in verdict.pcrs:
            for bank, actual in s.actual.items():
                before = self._verified_pcrs.get((s.pcr, bank))
                if before is not None and before != actual:
                    self.stats["pcr_changes"] += 1
                    event("pcr-changed", f"PCR{s.pcr} {bank} changed after it was verified", logging.ERROR,
                          pcr=s.pcr, bank=bank, expected=before.hex(), actual=actual.hex())
                if verdict.result == "verified" or before is not None:
                    self._verified_pcrs[(s.pcr, bank)] = actual  # reported once, as its own event

    # --- lifecycle ---------------------------------------------------------------------------------

    def start_servers(self) -> None:
        """Bind the metrics port and control socket before acting: a clash stops start-up, clearly."""
        from sld.quarantine.policy import Quarantine
        from sld.service import control, metrics

        self.quarantine = Quarantine(self.config.quarantine)  # reconcile: what the kernel holds now
        if self.quarantine.active:
            log.warning("quarantine found in place at start-up; the first verdict decides whether it stays")
        m = self.config.metrics
        self.registry = metrics.registry_for(self)
        if m.enabled and not m.textfile:
            try:
                self._servers.append(metrics.serve(self.registry, m))
            except (OSError, ssl.SSLError) as err:
                raise ConfigError(f"cannot serve metrics on {m.listen}:{m.port}: {err}", key="metrics") from None
        self._servers.append(control.serve(self, self.config.control.socket, self.config.control.group))

    def request_verify(self) -> None:
        self._wake.set()

    def run(self) -> int:
        journal.setup(self.config.log.debug)
        self.start_servers()
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: (self._reload.set(), self._wake.set()))
        log.info("sld starting: source %s, tcti %s, interval %gs", self.config.source.spec, self.config.tpm.tcti,
                 self.config.verify.interval)
        self.verify_now()
        self._export()
        notify("READY=1")
        next_run = time.monotonic() + self.config.verify.interval
        while not self._stop.is_set():
            notify("WATCHDOG=1")
            timeout = max(0.0, min(next_run - time.monotonic(), 5.0))
            if self._wake.wait(timeout):
                self._wake.clear()
                if self._stop.is_set():
                    break
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                    continue
            if time.monotonic() >= next_run:
                self.verify_now()
                self._export()
                next_run = time.monotonic() + self.config.verify.interval
        self.state = "stopping"
        notify("STOPPING=1")
        for server in self._servers:
            server.shutdown()
            server.server_close()
        if os.path.exists(self.config.control.socket):
            os.unlink(self.config.control.socket)
        log.info("sld stopped")
        return 0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def reload(self) -> None:
        """SIGHUP: a bad new config is refused and the old one kept."""
        try:
            new = configuration.load(self.config.path or None)
            from sld.quarantine.policy import Quarantine

            quarantine = Quarantine(new.quarantine)
        except SldError as err:
            log.error("config reload refused, keeping the running one: %s", err)
            return
        self.config = replace(new, path=self.config.path)
        self.quarantine = quarantine
        journal.set_debug(new.log.debug)
        event("config-reloaded", f"configuration reloaded from {self.config.path or 'defaults'}")
        self._wake.set()

    def _export(self) -> None:
        if self.config.metrics.enabled and self.config.metrics.textfile:
            from sld.service.metrics import write_textfile

            write_textfile(self.registry, self.config.metrics.textfile)
