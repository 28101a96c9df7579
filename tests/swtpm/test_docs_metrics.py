"""sld(8)'s METRICS section lists exactly the metric names a running daemon's /metrics serves."""

from __future__ import annotations

import re
from pathlib import Path

from tests.swtpm.test_daemon import Running, daemon  # noqa: F401  (the fixture: a real daemon on a simulator)

ROOT = Path(__file__).parents[2]


def documented() -> list[str]:
    text = (ROOT / "packaging" / "generated" / "sld.8").read_text().replace("\\-", "-")
    section = text.split("\n.SH METRICS\n", 1)[1].split("\n.SH ", 1)[0]
    return re.findall(r"^\.B (\S+)$", section, re.M)


def test_the_man_page_lists_what_a_scrape_serves(daemon: Running) -> None:  # noqa: F811
    daemon.wait_for("READY=1")
    served = re.findall(r"^# TYPE (\S+) \S+$", daemon.scrape(), re.M)
    assert documented() == served
    assert {"sld_build_info", "sld_tpm_errors_total", "sld_launch_verified"} <= set(served)

