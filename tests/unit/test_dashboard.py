"""conf/sld-dashboard.json: a valid Grafana dashboard whose queries use only exported metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_dashboard_is_valid_and_queries_exported_metrics() -> None:
    dash = json.loads((ROOT / "conf" / "sld-dashboard.json").read_text())
    assert {"title", "uid", "schemaVersion", "panels", "templating"} <= set(dash)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    exported = set(re.findall(r'"(sld_[a-z_]+)"', (ROOT / "sld" / "service" / "metrics.py").read_text()))
    exported |= {f"{m}_total" for m in exported}
    for panel in dash["panels"]:
        assert {"type", "title", "gridPos", "targets"} <= set(panel)
        for target in panel["targets"]:
            used = set(re.findall(r"\b(sld_[a-z_]+)", target["expr"]))
            assert used <= exported, (panel["title"], used - exported)
    titles = " ".join(p["title"] for p in dash["panels"])
    for needed in ("verified", "PCR mismatches", "TXT errors", "quarantine"):
        assert needed in titles
