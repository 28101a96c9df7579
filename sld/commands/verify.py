"""``sld verify``: one verification, printed for people or machines; the exit code is the verdict."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    """Verify in this process (a plain ``sld verify`` was offered to the running daemon first: sld.client)."""
    from sld.appraisal.files import load as load_policy
    from sld.report import verdict_json, verdict_text
    from sld.tpm import Tpm
    from sld.verify import verify_source

    policy = load_policy(args.policy) if args.policy else None
    with Tpm(args.tcti, locality=args.locality) as tpm:
        verdict = verify_source(args.source, tpm, mode=args.mode, lock=args.lock, policy=policy,
                                state_dir=args.state_dir)
    print(verdict_json(verdict) if args.json else verdict_text(verdict, sys.stdout.isatty()))
    return verdict.exit_code
