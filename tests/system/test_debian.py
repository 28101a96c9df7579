"""packaging/debian builds a .deb with dpkg-buildpackage, lintian reports no errors, and the packaged
tree (extracted) runs `sld verify` on the simulated platform."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.system.conftest import SYSTEM_PATH

ROOT = Path(__file__).parents[2]
pytestmark = [pytest.mark.system,
              pytest.mark.skipif(shutil.which("dpkg-buildpackage") is None or shutil.which("lintian") is None,
                                 reason="dpkg-buildpackage / lintian (Debian dpkg-dev, lintian) are absent")]


def test_lintian_reports_no_errors(deb: Path) -> None:
    run = subprocess.run(["lintian", str(deb)], capture_output=True, text=True, env=dict(os.environ, PATH=SYSTEM_PATH))
    assert not [line for line in run.stdout.splitlines() if line.startswith("E:")], run.stdout


def test_package_installs_every_operator_file(deb: Path) -> None:
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ("./usr/bin/sld", "./lib/systemd/system/sld.service", "./etc/sld/sld.toml",
                 "./usr/lib/systemd/catalog/sld.catalog", "./usr/share/man/man8/sld.8.gz",
                 "./usr/share/man/man5/sld.toml.5.gz", "./usr/share/bash-completion/completions/sld",
                 "./usr/share/zsh/vendor-completions/_sld", "./usr/share/sld/sld-alerts.yml",
                 "./usr/share/doc/sld/examples/sld.service.d/remote-scrape.conf"):
        assert path in listing
    depends = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True,
                             check=True).stdout
    assert "python3-tpm2-pytss" in depends and "libpcap0.8" in depends
    control = deb.parent / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    assert (control / "conffiles").read_text().split() == ["/etc/sld/sld.toml"]


@pytest.mark.swtpm
@pytest.mark.skipif(shutil.which("swtpm") is None, reason="swtpm is absent")
def test_packaged_tree_verifies_the_simulated_platform(deb: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    env = dict(os.environ, PYTHONPATH=str(root / "usr/lib/python3/dist-packages"))
    code = "import sys, sld.cli; print(sld.cli.__file__); sys.exit(sld.cli.main(sys.argv[1:]))"
    sim = tmp_path / "sim"

    def sld(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=60)

    up = sld("sim", "up", "--scenario", "clean", "--dir", str(sim), "--json")
    assert up.returncode == 0, up.stderr
    try:
        info = json.loads(up.stdout.split("\n", 1)[1])
        run = sld("verify", "--local", "--source", f"image:{info['image']}", "--tcti", info["tcti"], "--json")
        assert str(root) in run.stdout.splitlines()[0]  # the packaged module ran, not the checkout
        assert run.returncode == 0 and json.loads(run.stdout.split("\n", 1)[1])["result"] == "verified"
    finally:
        sld("sim", "down", "--dir", str(sim))


@pytest.mark.swtpm
@pytest.mark.skipif(shutil.which("swtpm") is None, reason="swtpm is absent")
def test_installed_on_a_clean_bookworm_root_it_verifies(deb: Path, scratch_root: Path, tmp_path: Path) -> None:
    """apt installs the .deb with Debian's own python3-tpm2-pytss/pyroute2/prometheus-client/construct."""
    root = scratch_root
    shutil.copy(deb, root / "tmp" / deb.name)
    env = dict(os.environ, PATH=SYSTEM_PATH, DEBIAN_FRONTEND="noninteractive")
    install = subprocess.run(["chroot", str(root), "sh", "-c", f"apt-get update -qq && apt-get install -y -qq "
                              f"/tmp/{deb.name}"], capture_output=True, text=True, env=env, timeout=600)
    if install.returncode != 0 and "Temporary failure resolving" in install.stdout + install.stderr:
        pytest.skip("no Debian mirror reachable from the chroot")
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    sim = tmp_path / "sim"
    up = subprocess.run([sys.executable, "-m", "sld.cli", "sim", "up", "--scenario", "clean", "--dir", str(sim),
                         "--json"], capture_output=True, text=True, check=True)
    info = json.loads(up.stdout)
    try:
        (root / "srv").mkdir(exist_ok=True)
        subprocess.run(["cp", "--sparse=always", info["image"], str(root / "srv" / "phys.img")], check=True)
        assert (root / "srv" / "phys.img").stat().st_blocks * 512 < 64 << 20  # 4 GiB apparent, sparse
        run = subprocess.run(["chroot", str(root), "sld", "verify", "--local", "--json", "--source",
                              "image:/srv/phys.img", "--tcti", info["tcti"]],
                             capture_output=True, text=True, env=env, timeout=60)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["result"] == "verified"
        assert subprocess.run(["chroot", str(root), "test", "-f", "/usr/lib/python3/dist-packages/sld/cli.py"]
                              ).returncode == 0
    finally:
        subprocess.run([sys.executable, "-m", "sld.cli", "sim", "down", "--dir", str(sim)], capture_output=True)
