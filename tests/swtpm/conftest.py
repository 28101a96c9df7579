"""The swtpm tier: every test gets its own real swtpm on free ports (never a mocked TPM)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sld.sim.swtpm import Swtpm

pytestmark = pytest.mark.swtpm

if shutil.which("swtpm") is None or shutil.which("swtpm_ioctl") is None:
    pytest.skip("swtpm/swtpm_ioctl (Debian swtpm, swtpm-tools) are absent", allow_module_level=True)


def sld(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sld.cli", *args], capture_output=True, text=True, timeout=120,
                          env=env)


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    tpm = Swtpm.start(tmp_path / "tpm")
    yield tpm
    tpm.stop()


class Sim:
    """A scenario brought up by ``sld sim up`` in a private directory; ``down`` in teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def up(self, scenario: str, *extra: str) -> dict[str, Any]:
        run = sld("sim", "up", "--scenario", scenario, "--dir", str(self.root), "--json", *extra)
        assert run.returncode == 0, run.stderr
        self.info = json.loads(run.stdout)
        return self.info

    def verify(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return sld("verify", "--source", f"image:{self.info['image']}", "--tcti", self.info["tcti"], "--json", *extra)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    s = Sim(tmp_path / "sim")
    yield s
    sld("sim", "down", "--dir", str(s.root))


@pytest.fixture(scope="session")
def referee() -> str:
    """The python of .venv-referee (scripts/referee-venv.sh): the PyPI keylime package, as a referee only."""
    from tests.tpm2tools import missing_tools

    if missing_tools():
        pytest.skip(f"tpm2-tools (Debian tpm2-tools) lacks {', '.join(missing_tools())}")
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(["bash", str(root / "scripts" / "referee-venv.sh")], capture_output=True, text=True,
                         timeout=900)
    if run.returncode != 0:
        pytest.skip(f"the keylime referee venv cannot be built here (PyPI unreachable?): {run.stderr[-300:]}")
    return run.stdout.strip().splitlines()[-1]
