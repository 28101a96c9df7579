"""``sld sim``: list scenarios, build platform images and securityfs views."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from sld.report import dump_json, table
from sld.sim.scenarios import SCENARIOS


def run_list(args: argparse.Namespace) -> int:
    if args.json:
        rows = [{"name": s.name, "description": s.description, "verdict": s.verdict, "exit_code": s.exit_code,
                 "with_clean_policy": s.with_clean_policy()} for s in SCENARIOS]
        print(dump_json("sim.scenarios", {"scenarios": rows}))
    else:
        print(table(((s.name, s.verdict, _appraised(s.with_clean_policy()), s.description) for s in SCENARIOS),
                    ("SCENARIO", "VERDICT", "WITH CLEAN'S POLICY", "DESCRIPTION")))
    return 0


def _appraised(outcome: dict[str, str | None]) -> str:
    """``failed: part mle``, ``verified (warns txt.previous-error)``: what a policy made on clean says."""
    text = str(outcome["verdict"]) + (f": part {outcome['part']}" if outcome["part"] else "")
    return text + (f" (warns {outcome['warning']})" if outcome["warning"] else "")


def run_build(args: argparse.Namespace) -> int:
    from sld.sim.builder import build_platform

    platform = build_platform(args.scenario, args.layout)
    manifest = platform.write_image(args.output)
    print(f"wrote {args.scenario} ({platform.layout} layout) to {args.output}; manifest {manifest}")
    return 0


def run_securityfs(args: argparse.Namespace) -> int:
    from sld.sim.builder import build_platform

    build_platform(args.scenario, args.layout).write_securityfs(args.output)
    print(f"wrote the securityfs view of {args.scenario} to {args.output}")
    return 0


DEFAULT_SIM_DIR = "/run/sld-sim"


def run_up(args: argparse.Namespace) -> int:
    """Image + securityfs view + a swtpm left where the scenario's launch leaves it."""
    from sld.sim.builder import build_platform
    from sld.sim.swtpm import STATE_FILE, Swtpm, launch

    root = Path(args.dir)
    _stop(root)
    platform = build_platform(args.scenario, args.layout)
    root.mkdir(parents=True, exist_ok=True)
    image = root / "phys.img"
    platform.write_image(image)
    platform.write_securityfs(root / "securityfs")
    tpm_dir = root / "tpm"
    if tpm_dir.exists():
        shutil.rmtree(tpm_dir)
    tpm = Swtpm.start(tpm_dir)
    try:
        done = launch(tpm, platform)
    except BaseException:
        tpm.stop()
        raise
    info = {"scenario": platform.scenario.name, "layout": platform.layout, "image": str(image),
            "securityfs": str(root / "securityfs"), "verdict": platform.scenario.verdict,
            "exit_code": platform.scenario.exit_code, "extended": done}
    tpm.save(root / STATE_FILE, **info)
    commands = {"verify": f"sld verify --source image:{image} --tcti {tpm.tcti} --locality 2"}
    if args.daemon_config:
        commands.update(write_daemon_config(Path(args.daemon_config), root, image, tpm.tcti, platform.scenario.name))
    if args.json:
        print(dump_json("sim.up", {"tcti": tpm.tcti, **info, "commands": commands}))
    else:
        print(f"scenario {info['scenario']} ({info['layout']} layout) is up; expected verdict {info['verdict']}")
        print(f"  image    {image}")
        print(f"  tcti     {tpm.tcti}")
        for label, command in commands.items():
            print(f"  {label:<8} {command}")
    return 0


def write_daemon_config(path: Path, root: Path, image: Path, tcti: str, scenario: str) -> dict[str, str]:
    """A ready sld.toml(5) for a daemon verifying this simulated platform (its own control socket and a free
    metrics port, so it runs beside an installed daemon); returns the commands that use it."""
    from sld.sim.swtpm import free_port_pair

    port, sock = free_port_pair(), root / "control.sock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# written by `sld sim up --scenario {scenario}`: a daemon for the simulated platform in {root}\n"
                    f"[source]\nspec = {json.dumps(f'image:{image}')}\n"
                    f"[tpm]\ntcti = {json.dumps(tcti)}\nlocality = 2\n"
                    f'[metrics]\nlisten = "127.0.0.1"\nport = {port}\n'
                    f"[control]\nsocket = {json.dumps(str(sock))}\n")
    return {"local": f"sld verify --config {path}", "daemon": f"sld daemon --config {path}",
            "status": f"sld status --socket {sock}", "ask": f"sld verify --socket {sock}",
            "metrics": f"curl -s http://127.0.0.1:{port}/metrics"}


def run_down(args: argparse.Namespace) -> int:
    stopped = _stop(Path(args.dir))
    print("simulated platform stopped" if stopped else f"no simulated platform under {args.dir}")
    return 0


def _stop(root: Path) -> bool:
    from sld.sim.swtpm import STATE_FILE, Swtpm

    state = root / STATE_FILE
    if not state.exists():
        return False
    Swtpm.load(state).stop()
    state.unlink()
    return True
