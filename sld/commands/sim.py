"""``sld sim``: list scenarios, build platform images and securityfs views."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

from sld.errors import SldError
from sld.platform.files import replace_file
from sld.report import dump_json, table
from sld.sim.scenarios import SCENARIOS


def run_list(args: argparse.Namespace) -> int:
    """``sld sim list``: every scenario with the verdict and exit code it should get."""
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
    """``sld sim build``: a scenario's sparse image and its manifest."""
    from sld.sim.builder import build_platform

    platform = build_platform(args.scenario, args.layout)
    manifest = platform.write_image(args.output)
    print(f"wrote {args.scenario} ({platform.layout} layout) to {args.output}; manifest {manifest}")
    return 0


def run_securityfs(args: argparse.Namespace) -> int:
    """``sld sim securityfs``: the files a Secure Launch kernel would export for the scenario."""
    from sld.sim.builder import build_platform

    build_platform(args.scenario, args.layout).write_securityfs(args.output)
    print(f"wrote the securityfs view of {args.scenario} to {args.output}")
    return 0


def default_sim_dir() -> Path:
    """Per user, never machine-wide (issue 16): $XDG_RUNTIME_DIR/sld-sim (the user's own runtime directory),
    else /run/sld-sim-UID where /run is writable (root), else sld-sim-UID in the temporary directory."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime) and os.path.isdir(runtime):
        return Path(runtime) / "sld-sim"
    parent = "/run" if os.access("/run", os.W_OK) else tempfile.gettempdir()
    return Path(parent) / f"sld-sim-{os.getuid()}"


def _sim_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir else default_sim_dir()


def _own_dir(root: Path) -> Path:
    """``root`` created (mode 0700) or found as a real directory of this user: never another's, never a link."""
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(root)
    except OSError as err:
        raise SldError(f"{root}: cannot create the simulator's directory: {err.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise SldError(f"{root} is not a directory of uid {os.getuid()} (a link, a file or another user's): "
                       "refusing to put a simulator there")
    return root


def run_up(args: argparse.Namespace) -> int:
    """Image + securityfs view + a swtpm left where the scenario's launch leaves it."""
    from sld.sim.builder import build_platform
    from sld.sim.swtpm import STATE_FILE, Swtpm, launch

    root = _own_dir(_sim_dir(args))
    _stop(root)
    platform = build_platform(args.scenario, args.layout)
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
    """A ready sld.toml(5) for a daemon verifying this simulated platform (its own control socket, state
    directory and a free metrics port, so it runs beside an installed daemon); returns the commands using it."""
    from sld.sim.swtpm import free_port_pair

    port, sock = free_port_pair(), root / "control.sock"
    text = (f"# written by `sld sim up --scenario {scenario}`: a daemon for the simulated platform in {root}\n"
            f"[source]\nspec = {json.dumps(f'image:{image}')}\n"
            f"[tpm]\ntcti = {json.dumps(tcti)}\nlocality = 2\n"
            f"[verify]\nstate_dir = {json.dumps(str(root / 'state'))}\n"
            f'[metrics]\nlisten = "127.0.0.1"\nport = {port}\n'
            f"[control]\nsocket = {json.dumps(str(sock))}\n").encode()

    def fill(f: BinaryIO) -> None:
        f.write(text)

    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, fill)  # never through a link planted at FILE
    return {"local": f"sld verify --config {path}", "daemon": f"sld daemon --config {path}",
            "status": f"sld status --socket {sock}", "ask": f"sld verify --socket {sock}",
            "metrics": f"curl -s http://127.0.0.1:{port}/metrics"}


def run_down(args: argparse.Namespace) -> int:
    """``sld sim down``: stop the swtpm ``sim up`` started in this directory, and only that one."""
    root = _sim_dir(args)
    print({"stopped": "simulated platform stopped", "none": f"no simulated platform under {root}",
           "gone": f"the simulated platform under {root} had already stopped"}[_stop(root)])
    return 0


def _stop(root: Path) -> str:
    """Stop the swtpm ``root/sim.json`` records, only if that PID is still the process sld started (issue 17)."""
    from sld.sim.swtpm import STATE_FILE, Swtpm, process_identity

    state = root / STATE_FILE
    if not state.is_file():
        return "none"
    tpm = Swtpm.load(state)
    if not tpm.is_ours():
        if process_identity(tpm.pid) is not None:
            print(f"sld: pid {tpm.pid} is not the swtpm {state} recorded (another executable, start time or boot); "
                  "left alone", file=sys.stderr)
        state.unlink()
        return "gone"
    tpm.stop()
    state.unlink()
    return "stopped"
