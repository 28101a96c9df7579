"""``sld daemon`` and ``sld status``."""

from __future__ import annotations

import argparse
from typing import Any

from sld.errors import SldError


def run_daemon(args: argparse.Namespace) -> int:
    """``sld daemon``: the systemd service (units/sld.service runs it); a bad configuration exits 2 here."""
    from sld.config import load
    from sld.service.daemon import Daemon

    return Daemon(load(args.config)).run()


def run_status(args: argparse.Namespace) -> int:
    """The daemon's state, its last verdict (with age, stale or not) and its current error, apart."""
    from sld.report import dump_json  # here: the daemon, which shares this module, renders no report at idle
    from sld.service.control import AccessDenied, request

    try:
        answer = request(args.socket, {"cmd": "status"})
        if "state" not in answer:  # an error reply: the daemon refused us (peer credentials): a usage problem
            raise AccessDenied(answer["error"])
    except SldError as err:
        if not args.json:
            raise
        print(dump_json("error", {"error": str(err), "exit_code": err.exit_code}))
        return err.exit_code
    print(dump_json("status", answer) if args.json else _status_text(answer))
    return int(answer["exit_code"])


def _status_text(answer: dict[str, Any]) -> str:
    verdict, lines = answer["verdict"], [f"state: {answer['state']}"]
    if verdict is None:
        lines.append("last verdict: none yet")
    else:
        age = f"{'stale, ' if verdict['stale'] else ''}{verdict['age_seconds']:.0f} s ago"
        lines.append(f"last verdict: {verdict['result']} ({age}): {verdict['summary']}")
    if answer["error"]:
        lines.append(f"error: {answer['error']} (since {answer['error_age_seconds']:.0f} s)")
    lines.append(f"quarantine: {'active' if answer['quarantined'] else 'not active'}")
    lines += [f"quarantine can be bypassed by: {f}" for f in answer.get("quarantine_overtaken_by", [])]
    return "\n".join(lines)
