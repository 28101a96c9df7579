"""Fixtures of the system tier: a debootstrap'd Debian bookworm root (cached) and the built .deb."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
CACHE = Path(os.environ.get("SLD_NSPAWN_CACHE", "/var/cache/sld-test"))
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("systemd,systemd-sysv,dbus,python3,libtss2-tctildr0,libtss2-tcti-swtpm0,libtss2-esys-3.0.2-0,"
            "libtss2-rc0,libtss2-mu0,libtss2-sys1,libtss2-fapi1,libpcap0.8")  # what the venv's C extensions link
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # Debian's python3 and tools, as on a build host


@pytest.fixture(scope="session")
def rootfs() -> Path:
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip("a Debian root needs root and debootstrap (Debian debootstrap)")
    root = CACHE / f"root-{hashlib.sha256(PACKAGES.encode()).hexdigest()[:12]}"  # rebuilt when PACKAGES change
    if not root.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = root.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        run = subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", str(tmp),
                              MIRROR], capture_output=True, text=True, timeout=1200)
        if run.returncode != 0:
            pytest.skip(f"debootstrap failed (no mirror reachable?): {run.stderr[-500:]}")
        tmp.rename(root)
    return root


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-buildpackage") is None:
        pytest.skip("dpkg-buildpackage (Debian dpkg-dev) is absent")
    work = tmp_path_factory.mktemp("deb")
    src = work / "sld"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file() and not rel.startswith("packaging/debian/"):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    shutil.copytree(ROOT / "packaging" / "debian", src / "debian")
    env = dict(os.environ, PATH=SYSTEM_PATH)
    run = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, capture_output=True, text=True, env=env,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return work / "sld_0.1.0-1_all.deb"
