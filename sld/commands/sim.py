"""``sld sim``: list scenarios, build platform images and securityfs views."""

from __future__ import annotations

import argparse

from sld.report import dump_json, table
from sld.sim.scenarios import SCENARIOS


def run_list(args: argparse.Namespace) -> int:
    if args.json:
        rows = [{"name": s.name, "description": s.description, "verdict": s.verdict, "exit_code": s.exit_code}
                for s in SCENARIOS]
        print(dump_json("sim.scenarios", {"scenarios": rows}))
    else:
        print(table(((s.name, s.verdict, s.description) for s in SCENARIOS), ("SCENARIO", "VERDICT", "DESCRIPTION")))
    return 0


def run_build(args: argparse.Namespace) -> int:
    from sld.sim.builder import build_platform

    manifest = build_platform(args.scenario, args.layout).write_image(args.output)
    print(f"wrote {args.scenario} ({args.layout} layout) to {args.output}; manifest {manifest}")
    return 0


def run_securityfs(args: argparse.Namespace) -> int:
    from sld.sim.builder import build_platform

    build_platform(args.scenario, args.layout).write_securityfs(args.output)
    print(f"wrote the securityfs view of {args.scenario} to {args.output}")
    return 0
