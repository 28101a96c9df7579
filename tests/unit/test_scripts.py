"""scripts/: the set-up installs no service-starting package, the two lists do not overlap, and the
shell scripts pass shellcheck."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[2] / "scripts"
SERVICES = {"prometheus", "prometheus-node-exporter"}  # Debian enables and starts these when installed


def packages(name: str) -> list[str]:
    lines = (SCRIPTS / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_the_demo_and_the_tests_install_disjoint_lists_without_services() -> None:
    demo, tests = packages("debian-packages.txt"), packages("debian-packages-test.txt")
    assert not set(demo) & set(tests)
    assert len(demo) == len(set(demo)) and len(tests) == len(set(tests))
    assert not SERVICES & (set(demo) | set(tests))
    assert {"swtpm", "libtss2-dev"} <= set(demo)  # what `sld sim up` and the tpm2-pytss build need


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck (Debian shellcheck) is absent")
def test_shell_scripts_pass_shellcheck() -> None:
    run = subprocess.run(["shellcheck", *map(str, sorted(SCRIPTS.glob("*.sh")))], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
