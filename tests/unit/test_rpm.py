"""packaging/rpm/sld.spec parses with rpmspec and installs the same operator files as the .deb."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SPEC = ROOT / "packaging" / "rpm" / "sld.spec"


@pytest.mark.skipif(shutil.which("rpmspec") is None, reason="rpmspec (Debian rpm) is absent")
def test_spec_parses() -> None:
    run = subprocess.run(["rpmspec", "-P", str(SPEC)], capture_output=True, text=True)
    assert run.returncode == 0 and "error" not in run.stderr.lower(), run.stderr
    name = subprocess.run(["rpmspec", "-q", "--srpm", "--qf", "%{NAME} %{VERSION}", str(SPEC)], capture_output=True,
                          text=True)
    assert name.stdout.strip() == "sld 0.1.0"


def test_spec_installs_what_the_debian_package_installs() -> None:
    spec = SPEC.read_text()
    for line in (ROOT / "packaging" / "debian" / "sld.install").read_text().splitlines():
        assert line.split()[0] in spec
    for page in (ROOT / "packaging" / "debian" / "sld.manpages").read_text().split():
        assert page in spec
    assert "packaging/generated/sld.bash-completion" in spec and "%config(noreplace)" in spec
