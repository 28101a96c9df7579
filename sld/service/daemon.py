"""``sld daemon``: verify at start-up and every interval, tell systemd the truth, serve metrics and
the control socket, and report PCRs that change after they were verified.

States (sld.vocab.DaemonState): starting -> running (verified) | failed (verification failed) |
degraded (a source or the TPM is unavailable for now, retried every interval) -> stopping.
Verification runs on the worker thread (sld.service.worker) with a deadline ([verify] timeout); the
main loop only schedules, watches and feeds the watchdog. READY=1 follows the first verdict (pass or
fail) or the first deadline; WATCHDOG=1 (sd_notify(3)) is sent only while no verification has run
past its deadline, so a TPM that stops answering makes systemd restart the service, never a stuck
loop that still says it is alive.

Everything others read is one frozen DaemonStatus (sld.service.state), replaced under ``_lock``.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import socket
import threading
import time
from concurrent.futures import Future, wait
from dataclasses import replace
from typing import Any

from sld import config as configuration
from sld.errors import ConfigError, SldError, TpmError
from sld.service import journal
from sld.service.journal import event, log
from sld.service.state import RESULT_STATE, DaemonStatus, counted, failed_checks
from sld.service.worker import Worker
from sld.text import count
from sld.verify import Verdict, load_policy, verify_source
from sld.vocab import DaemonState, JournalEvent, Result

TICK = 5.0  # the main loop's longest sleep: a fifth of the unit's WatchdogSec=30s at most
NOTIFY_TIMEOUT = 1.0


def notify(message: str) -> None:
    """sd_notify(3): one datagram to $NOTIFY_SOCKET ('@' names the abstract namespace); none without it.

    Sent through the socket module with a timeout (NOTIFY_TIMEOUT), which releases the GIL while it
    waits: a notify socket whose reader is slow (a busy PID 1, a test that stops reading) delays only
    the sending thread, for a bounded time, and the message is dropped (a WATCHDOG=1 less). systemd-
    python's notify() blocks in sendmsg() holding the GIL, which froze the control socket with it.
    """
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(NOTIFY_TIMEOUT)
        try:
            sock.sendto(message.encode(), "\0" + path[1:] if path.startswith("@") else path)
        except OSError as err:
            log.debug("sd_notify %s not sent: %s", message.partition("=")[0], err)


class Daemon:
    """The service: owns the configuration, the TPM connection, the quarantine and the published status."""

    def __init__(self, config: configuration.Config) -> None:
        self.config = config
        self._status = DaemonStatus()
        self._lock = threading.Lock()  # guards replacing _status; verification itself is the worker's
        self._tpm: Any = None
        self._attest_key: Any = None  # the attest requests' AK on their own TPM session (never the verification's)
        self._attesting = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._verified_pcrs: dict[tuple[int, str], bytes] = {}
        self._servers: list[Any] = []
        self._worker: Worker[Verdict | None] = Worker(self._verify)
        self._stuck = False
        self._enforcing = threading.Lock()  # the worker and the watch may both act on the quarantine
        self.quarantine: Any = None
        self.registry: Any = None

    # --- what the control socket and the collector see (sld.service.control.Service) ----------------

    def status(self) -> DaemonStatus:
        """The latest published state (a frozen value: read it without a lock)."""
        return self._status

    def verify(self) -> Future[Verdict | None]:
        """A fresh verification on the worker; None as its result means the daemon is degraded."""
        return self._worker.submit()

    def attest(self, nonce: bytes) -> Future[Any]:
        """Evidence bound to ``nonce`` (sld.evidence.collect), on its own thread and TPM session: a quote
        neither waits for a verification nor shares its ESAPI context; attest requests run one at a time."""
        future: Future[Any] = Future()
        threading.Thread(target=self._attest, args=(nonce, future), name="attest", daemon=True).start()
        return future

    def _attest(self, nonce: bytes, future: Future[Any]) -> None:
        from sld.ak import AttestationKey
        from sld.evidence.collect import collect
        from sld.tpm import Tpm

        with self._attesting:
            try:
                tpm, handle, key = self.config.tpm, self.config.attest.ak_handle, self._attest_key
                if key is not None and (key.tpm.opened_as != (tpm.tcti, tpm.locality) or key.handle != handle):
                    key.tpm.close()  # a reload changed [tpm] or [attest]
                    self._attest_key = None
                if self._attest_key is None:
                    self._attest_key = AttestationKey(Tpm(tpm.tcti, locality=tpm.locality, timeout=tpm.timeout),
                                                      handle)
                self._attest_key.tpm.timeout = tpm.timeout
                future.set_result(collect(self.config.source.spec, self._attest_key, nonce))
            except BaseException as err:  # noqa: BLE001 - the control socket answers (or logs) what the Future holds
                if isinstance(err, TpmError) and self._attest_key is not None:
                    self._attest_key.tpm.close()
                    self._attest_key = None  # reopen next time, as the verification's session is
                future.set_exception(err)

    def _publish(self, **changes: Any) -> DaemonStatus:
        with self._lock:
            self._status = replace(self._status, **changes)
            return self._status

    # --- verification (on the worker thread) --------------------------------------------------------

    def _open_tpm(self) -> Any:
        if self._tpm is None:
            from sld.tpm import Tpm

            self._tpm = Tpm(self.config.tpm.tcti, locality=self.config.tpm.locality,
                            timeout=self.config.tpm.timeout)
        return self._tpm

    def _verify(self) -> Verdict | None:
        """One verification; a TPM or source failure makes the daemon degraded, not dead."""
        self._publish(verifications=self._status.verifications + 1)
        verdict: Verdict | None = None
        try:
            policy = load_policy(self.config.verify.policy)
            verdict = verify_source(self.config.source.spec, self._open_tpm(), mode=self.config.verify.mode,
                                    policy=policy, state_dir=self.config.verify.state_dir or None)
        except SldError as err:
            self._degraded(err)
        except Exception as err:  # a bug must not kill the watchdog-supervised service; systemd sees STATUS
            log.exception("internal error during verification")
            self._degraded(SldError(f"internal error: {type(err).__name__}: {err}"))
        else:
            self._record(verdict)
        self._export()
        return verdict

    def _degraded(self, err: SldError) -> None:
        s = self._status
        tpm_errors = s.tpm_errors
        if isinstance(err, TpmError):
            tpm_errors = counted(tpm_errors, err.kind)
            event(JournalEvent.TPM_ERROR, f"TPM unavailable: {err}", logging.WARNING, kind=err.kind)
            if self._tpm is not None:
                self._tpm.close()
            self._tpm = None  # reopen next time: swtpm or the device may come back
        else:
            log.warning("source unavailable: %s", err)
        self._publish(state=DaemonState.DEGRADED, failures=s.failures + 1, error=str(err), error_time=time.time(),
                      error_exit_code=err.exit_code, tpm_errors=tpm_errors)
        notify(f"STATUS=degraded: {err}")
        self._enforce(DaemonState.DEGRADED)

    def _enforce(self, state: str) -> None:
        """Let the quarantine policy act on a verdict or on degraded (the worker's or the watch's)."""
        if self.quarantine is None:
            return
        done = None
        try:
            with self._enforcing:
                done = self.quarantine.decide(state)
        except SldError as err:
            log.error("quarantine: %s", err)
        self._publish_quarantine(changed=bool(done) and not str(done).startswith("dry run"))
        if done:
            interfaces = ", ".join(self.config.quarantine.interfaces)
            level = logging.WARNING if self.quarantine.active else logging.INFO
            event(JournalEvent.QUARANTINE,
                  f"quarantine {done} on {interfaces} ({state})", level, action=done, trigger=state)

    def _publish_quarantine(self, changed: bool = False) -> None:
        """What the kernel holds, as the quarantine last listed it; a foreign filter that can decide before
        sld's is journaled once when it appears, and stays in status and metrics while it is there."""
        q, s = self.quarantine, self._status
        overtaking = tuple(str(f) for f in q.observed.overtaking) if q is not None else ()
        if overtaking and overtaking != s.quarantine_overtaking:
            event(JournalEvent.QUARANTINE,
                  f"quarantine can be bypassed: {'; '.join(overtaking)} runs before sld's filters",
                  logging.ERROR, action="overtaken", filters="; ".join(overtaking))
        self._publish(quarantine_active=bool(q is not None and q.active), quarantine_overtaking=overtaking,
                      quarantine_changes=s.quarantine_changes + changed)

    def _record(self, verdict: Verdict) -> None:
        s, now = self._status, time.time()
        extends = s.extends
        for index in verdict.extended:
            extends = counted(extends, next(p.pcr for p in verdict.pcrs if index in p.events))
        if verdict.extended:
            event(JournalEvent.EXTENDED,
                  f"extended {count(len(verdict.extended), 'deferred event')}", count=len(verdict.extended))
        passed = verdict.result == Result.VERIFIED
        failed = failed_checks(verdict)
        changed = (s.verdict is None or s.stale  # the first verdict, or the first one after being degraded
                   or (s.verdict.result, failed_checks(s.verdict)) != (verdict.result, failed))
        self._publish(state=RESULT_STATE[verdict.result], verdict=verdict, verdict_time=now, error="", error_time=0.0,
                      error_exit_code=0, extends=extends, durations=s.durations.observe(verdict.duration_s),
                      pcr_changes=s.pcr_changes + self._pcr_changes(verdict),
                      failures=s.failures + (not passed), last_success=now if passed else s.last_success)
        if changed:  # not_covered: the banks whose PCR status is not-covered (JSON pcrs[].banks, sld_pcr_match)
            not_covered = dict.fromkeys(b for p in verdict.pcrs for b in p.uncovered)
            event(verdict.result, f"{verdict.result}: {verdict.summary}", logging.INFO if passed else logging.ERROR,
                  verdict=verdict.result, source=verdict.source, failed_checks=",".join(failed),
                  not_covered=",".join(not_covered))
        notify(f"STATUS={verdict.result}: {verdict.summary}")
        self._enforce(verdict.result)

    def _pcr_changes(self, verdict: Verdict) -> int:
        """A PCR that moves after it was verified is an event of its own, never a silent re-baseline."""
        changes = 0
        for s in verdict.pcrs:
            for bank, actual in s.actual.items():
                before = self._verified_pcrs.get((s.pcr, bank))
                if before is not None and before != actual:
                    changes += 1
                    event(JournalEvent.PCR_CHANGED, f"PCR{s.pcr} {bank} changed after it was verified", logging.ERROR,
                          pcr=s.pcr, bank=bank, expected=before.hex(), actual=actual.hex())
                if verdict.result == Result.VERIFIED or before is not None:
                    self._verified_pcrs[(s.pcr, bank)] = actual  # reported once, as its own event
        return changes

    # --- the main loop: schedule, watch the deadline, feed the watchdog ------------------------------

    def _watch(self) -> bool:
        """True while verification progresses; past the deadline, degraded (once) with the reason."""
        took = self._worker.running_for(time.monotonic())
        timeout = self.config.verify.timeout
        if took <= timeout:
            self._stuck = False
            return True
        if not self._stuck:
            self._stuck = True
            reason = f"verification has not finished after {took:.0f} s (TPM or source not answering)"
            event(JournalEvent.VERIFICATION_STUCK, reason, logging.ERROR, seconds=round(took))
            self._publish(state=DaemonState.DEGRADED, error=reason, error_time=time.time(), error_exit_code=4)
            notify(f"STATUS=degraded: {reason}")
            self._enforce(DaemonState.DEGRADED)
        return False

    def _await(self, future: Future[Verdict | None]) -> None:
        """Wait for one verification while it progresses (start-up: READY=1 follows it or its deadline)."""
        while not future.done() and self._watch() and not self._stop.is_set():
            wait((future,), timeout=1.0)

    def start_servers(self) -> None:
        """Bind the metrics port and control socket before acting: a clash stops start-up, clearly."""
        from sld.service import control, preflight

        preflight.check(self.config)
        _reserve_descriptors()
        self.quarantine = _quarantine(self.config.quarantine)  # reconcile: what the kernel holds now
        if self.quarantine is not None and self.quarantine.active:
            log.warning("quarantine found in place at start-up; the first verdict decides whether it stays")
        self._publish_quarantine()
        self._servers.append(control.serve(self, self.config.control.socket, self.config.control.group,
                                           self.config.verify.timeout))
        m = self.config.metrics
        if not m.enabled:
            return  # prometheus-client (and the HTTP and TLS stack under it) never imported
        from sld.service import metrics

        self.registry = metrics.registry_for(self.status)
        if not m.textfile:
            import ssl

            from sld.service import http

            try:
                self._servers.append(http.serve(self.registry, m))
            except (OSError, ssl.SSLError) as err:
                self._close_servers()
                raise ConfigError(f"cannot serve metrics on {m.listen}:{m.port}: {err}", key="metrics") from None

    def run(self) -> int:
        """The service until SIGTERM/SIGINT (exit 0): READY=1 to systemd after the first verification, then
        one every ``[verify] interval`` (SIGHUP reloads), WATCHDOG=1 only while none is past its timeout."""
        import signal

        journal.setup(self.config.log.debug)
        self.start_servers()
        gc.enable()  # bin/sld runs commands with the collector off; a service that runs for months collects
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        log.info("sld starting: source %s, tcti %s, interval %gs", self.config.source.spec, self.config.tpm.tcti,
                 self.config.verify.interval)
        self._await(self.verify())
        notify("READY=1")
        next_run = time.monotonic() + self.config.verify.interval
        while not self._stop.is_set():
            if self._watch():
                notify("WATCHDOG=1")
            if self._wake.wait(max(0.0, min(next_run - time.monotonic(), TICK))):
                self._wake.clear()
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                continue
            if time.monotonic() >= next_run:
                self.verify()
                next_run = time.monotonic() + self.config.verify.interval
        self._publish(state=DaemonState.STOPPING)
        notify("STOPPING=1")
        self._close_servers()
        log.info("sld stopped")
        return 0

    def _close_servers(self) -> None:
        """Stop every listener; the control socket unlinks only the socket it bound."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def request_reload(self) -> None:
        """SIGHUP's handler: the main loop reloads (never inside a signal handler)."""
        self._reload.set()
        self._wake.set()

    def stop(self) -> None:
        """SIGTERM/SIGINT's handler: the main loop ends, closes the listeners and says STOPPING=1."""
        self._stop.set()
        self._wake.set()

    def reload(self) -> None:
        """SIGHUP: a bad new config is refused and the old one kept."""
        try:
            new = configuration.load(self.config.path or None)
            from sld.service import preflight

            preflight.check(new)
            quarantine = _quarantine(new.quarantine)
        except SldError as err:
            log.error("config reload refused, keeping the running one: %s", err)
            return
        if new.control.socket != self.config.control.socket:
            log.warning("[control] socket changed: the new path is used after a restart")
        if new.metrics != self.config.metrics:
            log.warning("[metrics] changed: the listener (address, TLS, users, allow) is rebound after a restart")
        lifted = self._release_quarantine(new.quarantine)
        self.config = replace(new, path=self.config.path)
        self.quarantine = quarantine
        self._publish_quarantine(changed=lifted)
        journal.set_debug(new.log.debug)
        event(JournalEvent.CONFIG_RELOADED, f"configuration reloaded from {self.config.path or 'defaults'}")

    def _release_quarantine(self, successor: configuration.QuarantineConfig) -> bool:
        """On reload: lift sld's filters where the new configuration no longer quarantines."""
        if self.quarantine is None:
            return False
        try:
            with self._enforcing:
                lifted = self.quarantine.release(successor)
        except SldError as err:
            log.error("quarantine: %s", err)
            return False
        if lifted:
            event(JournalEvent.QUARANTINE,
                  f"quarantine lifted: {count(lifted, 'filter')} no longer configured (reload)",
                  logging.INFO, action="lifted", trigger="reload")
        return bool(lifted)

    def _export(self) -> None:
        """node_exporter's textfile: a write that fails is journaled and counted, never fatal."""
        path = self.config.metrics.textfile
        if not (path and self.registry is not None):
            return
        from sld.service.metrics import write_textfile

        try:
            write_textfile(self.registry, path)
        except OSError as err:
            event(JournalEvent.OUTPUT_ERROR,
                  f"cannot write the metrics textfile {path}: {err.strerror or err}", logging.ERROR,
                  output="textfile", path=path)
            self._publish(output_errors=counted(self._status.output_errors, "textfile"))



def _quarantine(config: configuration.QuarantineConfig) -> Any:
    """The quarantine policy when it is enabled; None otherwise, so pyroute2 (about 8 MiB of the
    daemon's memory) is imported only by the configurations that use it."""
    if not config.enabled:
        return None
    from sld.quarantine.policy import Quarantine

    return Quarantine(config)


def _reserve_descriptors() -> None:
    """Raise the soft open-files limit to the hard one: listeners are bounded (control.MAX_CONNECTIONS),
    and what the limit leaves above them stays for verification (the TPM, the source, the lock)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
