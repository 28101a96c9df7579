"""The remote-scraping drop-in shipped as an example: a valid addition to units/sld.service, and its
[metrics] example is a configuration sld loads, with the same networks in both places."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sld.config import loads

UNITS = Path(__file__).parents[2] / "units"
DROP_IN = UNITS / "sld.service.d" / "remote-scrape.conf"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is absent")
def test_unit_with_the_drop_in_verifies_clean(tmp_path: Path) -> None:
    unit = tmp_path / "sld.service"
    sld = Path(sys.executable).parent / "sld"
    unit.write_text((UNITS / "sld.service").read_text().replace("/usr/bin/sld", str(sld)) + DROP_IN.read_text())
    run = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0 and run.stderr == "" and run.stdout == "", run.stdout + run.stderr


def test_drop_in_example_config_loads_and_allows_the_same_networks() -> None:
    text = DROP_IN.read_text()
    lines = re.findall(r"^#   (\[\w+\]|\w+ = .*?)(?:  +\(.*)?$", text, flags=re.M)
    example = "\n".join(lines)
    metrics = loads(example.encode()).metrics
    allowed = re.search(r"^IPAddressAllow=(.*)$", text, flags=re.M)
    assert allowed and metrics.client_ca and metrics.certfile
    assert tuple(allowed.group(1).split()) == metrics.allow
