"""Referee: tboot's txt-stat reads a simulated image bind-mounted over /dev/mem (private mount namespace)
and must print the register values and flags that ``sld inspect regs --source image:`` reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sld.formats.registers import TXT_PRIV_BASE, TXT_PUB_BASE, build_registers
from sld.platform.image import write_image
from sld.sim.builder import build_platform
from sld.sim.scenarios import LAYOUTS, SCENARIOS
from tests.txtstat import STS_NAMES, parse_bios_data, parse_txt_stat

pytestmark = [
    pytest.mark.referee,
    pytest.mark.skipif(shutil.which("txt-stat") is None, reason="txt-stat (Debian tboot) is absent"),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                       reason="needs root and unshare for a private mount namespace"),
]

MOUNT_AND_RUN = 'mount -t tmpfs none /dev && touch /dev/mem && mount --bind "$0" /dev/mem && exec txt-stat'


def txt_stat(image: Path, *args: str) -> str:
    run = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", f"{MOUNT_AND_RUN} {' '.join(args)}",
                          str(image)],
                         capture_output=True, text=True, timeout=30)
    assert "Intel(r) TXT Configuration Registers" in run.stdout, run.stderr
    return run.stdout


@pytest.mark.parametrize("name", sorted({s.name for s in SCENARIOS}))
def test_txt_stat_and_sld_agree_on_registers(tmp_path: Path, name: str) -> None:
    regs = dict(build_platform(name).registers, DPR=0x7C000031, **{"SINIT.BASE": 0x7B0E0000, "SINIT.SIZE": 0x20000})
    regs["PUBLIC.KEY"] = bytes(range(32))
    page = build_registers(regs)
    image = tmp_path / "phys.img"
    write_image(image, {TXT_PRIV_BASE: page, TXT_PUB_BASE: page})

    theirs, fields = parse_txt_stat(txt_stat(image))
    run = subprocess.run([sys.executable, "-m", "sld.cli", "inspect", "regs", "--source", f"image:{image}", "--json"],
                         capture_output=True, text=True, check=True)
    ours = json.loads(run.stdout)
    values, decoded = ours["registers"], ours["decoded"]
    for reg, key in (("STS", "STS"), ("ESTS", "ESTS"), ("E2STS", "E2STS"), ("ERRORCODE", "ERRORCODE"),
                     ("DIDVID", "DIDVID"), ("QPIIF", "VER.EMIF"), ("SINIT.BASE", "SINIT.BASE"),
                     ("HEAP.BASE", "HEAP.BASE"), ("DPR", "DPR")):
        assert theirs[reg] == values[key], reg
    for flag, value in fields["STS"].items():
        assert decoded["STS"][STS_NAMES[flag]] is value, flag
    assert decoded["E2STS"]["secrets"] is fields["E2STS"]["secrets"]
    assert decoded["DIDVID"]["device_id"] == fields["DIDVID"]["device_id"]
    assert fields["DPR"]["top"] == 0x7C000000 and fields["DPR"]["lock"] is True


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ["clean", "clean-tpm12"])
def test_txt_stat_and_sld_agree_on_bios_data(tmp_path: Path, name: str, layout: str) -> None:
    image = tmp_path / "phys.img"
    build_platform(name, layout).write_image(image)
    theirs = parse_bios_data(txt_stat(image, "--heap"))
    run = subprocess.run([sys.executable, "-m", "sld.cli", "inspect", "heap", "--source", f"image:{image}", "--json"],
                         capture_output=True, text=True, check=True)
    bios = json.loads(run.stdout)["tables"][0]
    fields, elements = bios["fields"], {e["name"]: e["fields"] for e in bios["elements"]}
    assert theirs["version"] == fields["version"]
    assert theirs["num_logical_procs"] == fields["num_log_procs"]
    assert theirs["bios_sinit_size"] == fields["bios_sinit_size"]
    assert theirs["flags"] == fields["sinit_flags"] | (fields.get("mle_flags") or 0) << 32  # tboot reads one u64
    assert (theirs["major"], theirs["minor"], theirs["rev"]) == tuple(elements["BIOS_SPEC_VER"].values())
    assert theirs["num_acms"] == elements["ACM"]["num_acms"]
    assert theirs["acm_addrs[0]"] == elements["ACM"]["acm_addrs"][0]
