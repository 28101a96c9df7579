"""Structured logging: the journal (with MESSAGE_IDs and SLD_* fields) under systemd, stderr otherwise.

One MESSAGE_ID per kind of message, kept here and in ``conf/sld.catalog`` so ``journalctl -x`` explains
each one and ``journalctl MESSAGE_ID=...`` finds them across a fleet.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from sld.vocab import JournalEvent, LogCategory, Result, choices

MESSAGE_IDS: dict[Result | JournalEvent, str] = {
    Result.VERIFIED: "00113a113da54ac992c40ef820f74e5b",
    Result.FAILED: "ddc83d0bbd9a4054b8f76c4a1bde17ca",
    Result.NOT_LAUNCHED: "b36bb1914cde4c0c98e8c7a49b2be3c2",
    JournalEvent.EXTENDED: "67b2fee4d35944248ba564613a058f11",
    JournalEvent.PCR_CHANGED: "5f5b2fc4ab704c0b9d951a88b4ca524c",
    JournalEvent.TPM_ERROR: "a83ebdb0b5074275b6da50aaf379ea12",
    JournalEvent.CONFIG_RELOADED: "7392f52949994eb586317507450a51eb",
    JournalEvent.QUARANTINE: "c0b147b3e30249af9097e27156615e6d",
    JournalEvent.VERIFICATION_STUCK: "777779a29b834762a851beb5104eb4e8",
    JournalEvent.OUTPUT_ERROR: "987ae6c1ef654be6b65545fd7f72df29",
}
CATEGORIES = choices(LogCategory)

log = logging.getLogger("sld")


def setup(debug: tuple[str, ...] = ()) -> None:
    """Journal when systemd connected our stderr to it (JOURNAL_STREAM), else plain stderr lines."""
    handler: logging.Handler
    if os.environ.get("JOURNAL_STREAM"):
        from systemd.journal import JournalHandler

        handler = JournalHandler(SYSLOG_IDENTIFIER="sld")
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("sld[%(process)d]: %(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    set_debug(debug)


def set_debug(categories: tuple[str, ...] | list[str]) -> None:
    """Turn on debug records for the ``[log] debug`` categories only, off for the rest (set again on reload)."""
    for name in CATEGORIES:
        logging.getLogger(f"sld.{name}").setLevel(logging.DEBUG if name in categories else logging.INFO)


def event(kind: Result | JournalEvent, message: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """One structured record: MESSAGE_ID for ``kind`` plus SLD_* fields (journal) or key=value (stderr)."""
    extra = {"MESSAGE_ID": MESSAGE_IDS[kind], **{f"SLD_{k.upper()}": v for k, v in fields.items()}}
    suffix = "" if os.environ.get("JOURNAL_STREAM") else "".join(f" {k}={v}" for k, v in fields.items())
    log.log(level, message + suffix, extra=extra)
