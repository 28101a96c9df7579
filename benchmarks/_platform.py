"""Shared by the benchmarks: the simulated clean platform brought up, and a daemon config for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SLD = [str(Path(sys.executable).parent / "sld")]  # the command operators run, as installed


def compile_sld() -> None:
    """Byte-compile sld as a package install does (dh_python's py3compile, pip): with
    PYTHONDONTWRITEBYTECODE set, every process would otherwise compile each module it imports."""
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "sld"), quiet=1)


def sim_up(root: Path) -> dict[str, Any]:
    run = subprocess.run([*SLD, "sim", "up", "--scenario", "clean", "--dir", str(root / "sim"), "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


def sim_down(root: Path) -> None:
    subprocess.run([*SLD, "sim", "down", "--dir", str(root / "sim")], capture_output=True)


def daemon_config(root: Path, info: dict[str, Any], metrics_port: int | None = None) -> Path:
    metrics = f"port = {metrics_port}" if metrics_port else "enabled = false"
    conf = root / "sld.toml"
    conf.write_text(f'[source]\nspec = "image:{info["image"]}"\n[tpm]\ntcti = "{info["tcti"]}"\n'
                    f'[metrics]\n{metrics}\n'
                    f'[control]\nsocket = "{root / "control.sock"}"\n')
    return conf


def print_ratios(peer_label: str, peer: list[float], ours_label: str, ours: list[float], goal: float) -> None:
    """One line per measure (wall, CPU): the peer's median, sld's, and their ratio against the goal."""
    for i, what in enumerate(("wall", "CPU")):
        print(f"{what}: {peer_label} {peer[i] * 1000:.1f} ms; {ours_label} {ours[i] * 1000:.1f} ms; "
              f"ratio {ours[i] / peer[i]:.2f} (goal <= {goal:g})")
