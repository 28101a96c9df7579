"""The kernel TPM driver, for real: a Debian kernel under QEMU (TCG; KVM is unavailable here) with a
tpm-tis device backed by swtpm, running `sld verify` from the host root (9p, read-only) through
`device:/dev/tpmrm0` against a simulated platform image. Kernel and busybox come from Debian packages
at test set-up; nothing binary is committed.

QEMU owns swtpm's control channel (swtpm serves one control client at a time), so the launch cannot be
driven while the guest runs; it is driven before, on the host, and carried into the guest as swtpm's
stored volatile state, which QEMU's CMD_INIT restores: the guest's kernel finds PCR17-22 as the
launch left them, and sld inside reaches the verified and failed verdicts through the real driver.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sld.sim.swtpm import STATE_FILE, Swtpm
from tests.system.conftest import CACHE

ROOT = Path(__file__).parents[2]
KERNEL_PACKAGE = "linux-image-amd64"  # the metapackage; its dependency names the versioned image
MODULES = ("virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "netfs",
           "fscache", "9pnet", "9pnet_virtio", "9p")
pytestmark = [pytest.mark.system, pytest.mark.swtpm,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or shutil.which("swtpm") is None
                                 or not Path("/bin/busybox").exists(),
                                 reason="qemu-system-x86, busybox-static or swtpm (Debian) is absent")]

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc none /proc; mount -t sysfs none /sys; mount -t devtmpfs none /dev
for m in {modules}; do insmod /modules/$m.ko 2>/dev/null; done
mkdir -p /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /newroot
mount -t devtmpfs none /newroot/dev; mount -t proc none /newroot/proc; mount -t sysfs none /newroot/sys
mount -t tmpfs none /newroot/run
echo "SLD-PCR17-SYSFS $(cat /sys/class/tpm/tpm0/pcr-sha256/17)"
echo SLD-BEGIN
chroot /newroot {python} -m sld.cli verify --local --json --mode validate --source image:{image} \\
  --tcti device:/dev/tpmrm0
echo "SLD-END $?"
echo SLD-BEGIN-PERFORM
chroot /newroot {python} -m sld.cli verify --local --json --mode perform --source image:{image} \\
  --tcti device:/dev/tpmrm0
echo "SLD-END-PERFORM $?"
poweroff -f
"""


def _kernel() -> tuple[Path, Path]:
    """vmlinuz and the modules directory of Debian's generic kernel (cached; downloaded, not installed)."""
    work = CACHE / "kernel"
    found = sorted(work.glob("x/boot/vmlinuz-*"))
    if not found:
        work.mkdir(parents=True, exist_ok=True)
        deps = subprocess.run(["apt-cache", "depends", KERNEL_PACKAGE], capture_output=True, text=True).stdout
        image = re.search(r"Depends: (linux-image-[0-9][^\s]+)", deps)
        if image is None:
            pytest.skip(f"cannot resolve {KERNEL_PACKAGE} with apt-cache")
        if subprocess.run(["apt-get", "download", image.group(1)], cwd=work, capture_output=True).returncode:
            pytest.skip(f"apt-get download {image.group(1)} failed (no mirror?)")
        deb = next(work.glob(f"{image.group(1)}_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(work / "x")], check=True)
        found = sorted(work.glob("x/boot/vmlinuz-*"))
    vmlinuz = found[-1]
    return vmlinuz, work / "x" / "lib" / "modules" / vmlinuz.name.removeprefix("vmlinuz-")


def _initrd(tmp: Path, modules_dir: Path, image: Path) -> Path:
    root = tmp / "initrd"
    for d in ("bin", "proc", "sys", "dev", "modules"):
        (root / d).mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for name in MODULES:
        found = list(modules_dir.rglob(f"{name}.ko"))
        if found:
            shutil.copy(found[0], root / "modules" / f"{name}.ko")
    init = root / "init"
    init.write_text(INIT.format(modules=" ".join(MODULES), python=sys.executable, image=image))
    init.chmod(0o755)
    files = subprocess.run(["find", "."], cwd=root, capture_output=True, text=True, check=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=files.encode(), capture_output=True,
                          check=True).stdout
    out = tmp / "initrd.img"
    out.write_bytes(cpio)
    return out


def _section(console: str, begin: str, end: str) -> tuple[dict, int]:
    body = console.split(begin, 1)[1].split(end, 1)
    code = int(body[1].split()[0])
    text = body[0]
    return json.loads(text[text.index("{"): text.rindex("}") + 1]), code


def _tpm_state(shared: Path, scenario: str | None) -> tuple[Path, Path]:
    """(swtpm state dir, platform image). A scenario's launch is driven on the host (swtpm TCTI, localities
    3 and 2) and its volatile state stored: QEMU's CMD_INIT restores it, so the guest's kernel finds the
    TPM as that launch left it. None: a TPM no launch ever touched, beside the clean scenario's image."""
    sim = shared / "sim"
    up = subprocess.run([sys.executable, "-m", "sld.cli", "sim", "up", "--scenario", scenario or "clean",
                         "--dir", str(sim), "--json"], check=True, capture_output=True, text=True)
    info = json.loads(up.stdout)
    if scenario is not None:
        Swtpm.load(sim / STATE_FILE).ioctl("-v")  # CMD_STORE_VOLATILE: tpm2-00.volatilestate in the state dir
    subprocess.run([sys.executable, "-m", "sld.cli", "sim", "down", "--dir", str(sim)], check=True,
                   capture_output=True)
    state = sim / "tpm"
    if scenario is None:
        shutil.rmtree(state)
        state.mkdir()
    return state, Path(info["image"])


@pytest.mark.parametrize(("scenario", "validated", "performed"), [
    # A TPM that no DRTM touched: PCR17 all-ones through the driver, so "not launched", never "mismatch".
    (None, (3, "not-launched"), (3, "not-launched")),
    ("clean", (0, "verified"), (0, "verified")),
    # Extends deferred by the kernel: sld finds them; through the driver (locality 0) it says so, extends none.
    ("partial-extend", (1, "failed"), (1, "failed")),
])
def test_sld_verify_through_the_kernel_tpm_driver(tmp_path: Path, scenario: str | None,
                                                  validated: tuple[int, str], performed: tuple[int, str]) -> None:
    vmlinuz, modules = _kernel()
    shared = Path(tempfile.mkdtemp(prefix="sld-qemu-"))
    try:
        state, image = _tpm_state(shared, scenario)
        initrd = _initrd(tmp_path, modules, image)
        ctrl = tmp_path / "ctrl.sock"
        subprocess.run(["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}", "--ctrl",
                        f"type=unixio,path={ctrl}", "-d"], check=True)
        run = subprocess.run(
            ["qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "2", "-nographic", "-no-reboot",
             "-kernel", str(vmlinuz), "-initrd", str(initrd), "-append", "console=ttyS0 panic=-1 quiet",
             "-chardev", f"socket,id=chrtpm,path={ctrl}", "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
             "-device", "tpm-tis,tpmdev=tpm0",
             "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"],
            capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(shared)
    console = run.stdout.replace("\r\n", "\n")
    assert "SLD-END" in console, console[-4000:]
    sysfs = re.search(r"SLD-PCR17-SYSFS ([0-9A-Fa-f]+)", console).group(1).lower()
    verdict, code = _section(console, "SLD-BEGIN\n", "SLD-END ")
    assert (code, verdict["result"]) == validated, verdict["summary"]
    assert (sysfs == "f" * 64) == (scenario is None)  # the launch is what the guest's kernel sees
    pcr17 = next(s for s in verdict["pcrs"] if s["pcr"] == 17)
    assert pcr17["actual"]["sha256"] == sysfs  # the value sld read through /dev/tpmrm0 is the kernel's
    assert verdict["source"].startswith("image:")
    after, code = _section(console, "SLD-BEGIN-PERFORM\n", "SLD-END-PERFORM ")
    assert (code, after["result"]) == performed and after["extended"] == []
    if scenario == "partial-extend":
        assert "deferred" in verdict["summary"] or "not extended" in verdict["summary"]
        assert "locality 0" in after["summary"]  # the kernel driver's locality, named, and nothing extended
