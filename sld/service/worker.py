"""Verification off the daemon's main loop: one job at a time on its own thread, with its age known.

The main loop must stay free to notice a verification that no longer progresses (a TPM that stops
answering, a source that blocks) and to stop feeding systemd's watchdog then: sd_notify(3)
WATCHDOG=1 means "the service works", which a loop blocked inside a TPM command cannot know.
Requests that arrive while a job is still queued share it, so a burst of ``sld verify`` clients
costs one verification, not one each, and the queue never grows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class Worker(Generic[T]):
    """Runs ``job`` on a daemon thread whenever :meth:`submit` asks; exceptions go to the Future."""

    def __init__(self, job: Callable[[], T], name: str = "verify") -> None:
        self._job = job
        self._lock = threading.Lock()
        self._queued: Future[T] | None = None
        self._started: float | None = None  # time.monotonic() when the running job began
        self._wake = threading.Event()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def submit(self) -> Future[T]:
        """A Future of the next run of the job (the queued one if a run is already waiting)."""
        with self._lock:
            if self._queued is None:
                self._queued = Future()
                self._wake.set()
            return self._queued

    def running_for(self, now: float) -> float:
        """Seconds the current run has taken so far (``time.monotonic()`` clock), 0 when idle."""
        started = self._started
        return 0.0 if started is None else now - started

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                future, self._queued = self._queued, None
                self._wake.clear()
                self._started = time.monotonic()
            if future is not None and future.set_running_or_notify_cancel():
                try:
                    future.set_result(self._job())
                except BaseException as err:  # noqa: BLE001 - the caller's Future carries it
                    future.set_exception(err)
            self._started = None
