"""``sld verify``: one verification, printed for people or machines; the exit code is the verdict."""

from __future__ import annotations

import argparse
import sys

from sld.report import verdict_json, verdict_text


def run(args: argparse.Namespace) -> int:
    from sld.tpm import Tpm
    from sld.verify import verify_source

    with Tpm(args.tcti, locality=args.locality) as tpm:
        verdict = verify_source(args.source, tpm, mode=args.mode, lock=args.lock)
    print(verdict_json(verdict) if args.json else verdict_text(verdict, sys.stdout.isatty()))
    return verdict.exit_code
