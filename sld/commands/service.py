"""``sld daemon`` and ``sld status``."""

from __future__ import annotations

import argparse

from sld.report import dump_json


def run_daemon(args: argparse.Namespace) -> int:
    from sld.config import load
    from sld.service.daemon import Daemon

    return Daemon(load(args.config)).run()


def run_status(args: argparse.Namespace) -> int:
    from sld.service.control import request

    answer = request(args.socket, {"cmd": "status"})
    if args.json:
        print(dump_json("status", answer))
    else:
        print(f"state: {answer['state']}")
        print(f"verdict: {answer['result'] or '-'}: {answer['summary'] or ''}")
        print(f"quarantine: {'active' if answer['quarantined'] else 'not active'}")
    return 0
