"""sld.trace: debug records reach a configured logging; a command that configures none never loads logging."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from sld import trace


def test_a_debug_record_reaches_the_configured_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="sld.tpm"):
        trace.debug("sld.tpm", "%s via %s (attempt %d)", "PCR_Read", "swtpm:port=1", 2)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("sld.tpm", logging.DEBUG, "PCR_Read via swtpm:port=1 (attempt 2)")]


def test_a_cold_verification_loads_no_logging() -> None:
    code = ("import sys, sld.commands.verify, sld.verify, sld.tpm, sld.discover; "
            "print('logging' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
