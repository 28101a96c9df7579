"""A bounded coverage-guided fuzz run of every parser: only sld's typed errors, never a crash."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is absent (pip install .[test])")
TARGETS = ("heap", "slrt", "tpm12", "agile", "registers", "config", "quote")
SCRIPT = Path(__file__).parents[2] / "fuzz" / "targets.py"


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_runs_without_a_crash(tmp_path: Path, target: str) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), target, "2", str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]
    runs = int(re.findall(r"Done (\d+) runs", run.stderr)[-1])
    assert runs > 1000
    assert not list(tmp_path.glob("crash-*"))
