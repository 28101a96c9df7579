"""Fixtures of the system tier: a debootstrap'd Debian bookworm root (cached), a throw-away overlay of it,
and the built .deb; and the tier's peak disk use, printed at the end of the session (budget 2 GB: the
cache of about 800 MB, and per test only what it writes: images stay sparse, roots are overlays)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
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


@pytest.fixture
def scratch_root(rootfs: Path, tmp_path: Path) -> Iterator[Path]:
    """A writable bookworm root for one test: an overlay on the cached one (its writes only, never a copy)."""
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "root"
    for d in (upper, work, merged):
        d.mkdir()
    subprocess.run(["mount", "-t", "overlay", "sld-root", "-o", f"lowerdir={rootfs},upperdir={upper},workdir={work}",
                    str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", "-R", str(merged)], check=True)


def allocated(path: Path) -> int:
    """Bytes the files under ``path`` take on disk (st_blocks: a sparse file counts its data only)."""
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


PEAK = {"temp": 0, "cache": 0}
GB = 1 << 30
BUDGET = 2 * GB  # issue 16: the suite's peak disk use, printed, and under 2 GB


@pytest.fixture(autouse=True)
def _disk_use(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[None]:
    """After each test, before its tmp_path goes: what the session's temporary files take."""
    yield
    PEAK["temp"] = max(PEAK["temp"], allocated(tmp_path_factory.getbasetemp()))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A session that ran system tests and went over the budget fails, whatever its tests said."""
    if PEAK["temp"]:
        PEAK["cache"] = allocated(CACHE) if CACHE.exists() else 0
        if PEAK["temp"] + PEAK["cache"] > BUDGET:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not PEAK["temp"]:
        return
    peak = PEAK["temp"] + PEAK["cache"]
    terminalreporter.write_line(f"system tier: peak disk use {peak / GB:.2f} GB (temporary files "
                                f"{PEAK['temp'] / GB:.2f} GB + cache {CACHE} {PEAK['cache'] / GB:.2f} GB; budget "
                                f"{BUDGET / GB:g} GB{': OVER BUDGET' if peak > BUDGET else ''})", red=peak > BUDGET)


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
    # A non-Debian python first on PATH (this venv's), as on a developer's machine: debian/rules copes.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    run = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, capture_output=True, text=True, env=env,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return work / "sld_0.1.0-1_all.deb"
