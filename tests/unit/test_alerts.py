"""conf/sld-alerts.yml: promtool accepts the rules and their unit tests pass; every metric a rule
uses is one the daemon exports (no alert on a name that never exists)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CONF = Path(__file__).parents[2] / "conf"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) is absent")


def test_rules_check_and_unit_tests_pass() -> None:
    check = subprocess.run(["promtool", "check", "rules", "sld-alerts.yml"], cwd=CONF, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(["promtool", "test", "rules", "sld-alerts.test.yml"], cwd=CONF, capture_output=True,
                          text=True)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


def test_rules_only_use_exported_metric_names() -> None:
    source = (Path(__file__).parents[2] / "sld" / "service" / "metrics.py").read_text()
    exported = set(re.findall(r'"(sld_[a-z_]+)"', source))
    exported |= {f"{name}_total" for name in exported}
    used = set(re.findall(r"\b(sld_[a-z_]+)", (CONF / "sld-alerts.yml").read_text()))
    assert used <= exported, used - exported
