"""``sld verify``: one verification, printed for people or machines; the exit code is the verdict."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    """Verify in this process (a plain ``sld verify`` was offered to the running daemon first: sld.client)."""
    if args.evidence or args.ak or args.nonce or args.previous or args.format:
        from sld.commands.evidence import run as verify_evidence

        return verify_evidence(args)
    from sld.policy import load as load_policy
    from sld.report import verdict_json, verdict_text
    from sld.tpm import Tpm
    from sld.verify import verify_source

    policy = load_policy(args.policy) if args.policy else None
    with Tpm(args.tcti, locality=args.locality) as tpm:
        verdict = verify_source(args.source, tpm, mode=args.mode, lock=args.lock, policy=policy)
    print(verdict_json(verdict) if args.json else verdict_text(verdict, sys.stdout.isatty()))
    return verdict.exit_code
