"""units/sld.service: systemd-analyze verify is clean and the offline security exposure is <= 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "units" / "sld.service"
pytestmark = [pytest.mark.system,
              pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is absent")]


def test_verify_is_clean(tmp_path: Path) -> None:
    """ExecStart points at this checkout's sld, as the package's /usr/bin/sld would exist once installed."""
    sld = Path(sys.executable).parent / "sld"
    unit = tmp_path / "sld.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/sld", str(sld)))
    run = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0 and run.stderr == "" and run.stdout == "", run.stdout + run.stderr


def test_security_exposure_is_at_most_2() -> None:
    run = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNIT)], capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for sld.service: (\d+\.\d+)", run.stdout).group(1))
    assert score <= 2.0, run.stdout
    assert "Type=notify" in UNIT.read_text() and "WatchdogSec=" in UNIT.read_text()
