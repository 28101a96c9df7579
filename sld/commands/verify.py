"""``sld verify``: one verification, printed for people or machines; the exit code is the verdict."""

from __future__ import annotations

import argparse
import json
import sys


def run(args: argparse.Namespace) -> int:
    """Ask the running daemon (fast path, same source and TPM it was configured with) unless told not to."""
    import os

    if not args.local and args.source == "auto" and args.tcti == "device:/dev/tpmrm0" and os.path.exists(args.socket):
        from sld.errors import SourceError
        from sld.service.control import request

        try:
            answer = request(args.socket, {"cmd": "verify"})
        except SourceError:
            answer = None
        if answer and "verdict" in answer:
            verdict = answer["verdict"]
            print(json.dumps(verdict, indent=2) if args.json else
                  f"verdict (from the daemon): {verdict['result']}: {verdict['summary']}")
            return int(answer["exit_code"])
    from sld.policy import load as load_policy
    from sld.report import verdict_json, verdict_text
    from sld.tpm import Tpm
    from sld.verify import verify_source

    policy = load_policy(args.policy) if args.policy else None
    with Tpm(args.tcti, locality=args.locality) as tpm:
        verdict = verify_source(args.source, tpm, mode=args.mode, lock=args.lock, policy=policy)
    print(verdict_json(verdict) if args.json else verdict_text(verdict, sys.stdout.isatty()))
    return verdict.exit_code
