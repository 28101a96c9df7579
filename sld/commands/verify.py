"""``sld verify``: one verification, printed for people or machines; the exit code is the verdict.

A plain ``sld verify [--json] [--socket PATH]`` is answered by the running daemon (sld.client). This
module runs when it is not: with ``--local`` or any other option, or when no daemon answers. It then
verifies with the daemon's own configuration file (sld.config; the options override its keys), so an
operator never gets a verdict for a TCTI or source nobody configured, and says so on stderr.
"""

from __future__ import annotations

import sys

from sld.config import Config
from sld.paths import DEFAULT_CONFIG
from sld.records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse  # for the annotations only: a cold local verification is read without argparse (sld.cli)


class Settings(Record):
    """What a local verification uses: each from an option, else the configuration file, else its default."""

    source: str
    tcti: str
    locality: int | None
    timeout: float
    mode: str
    policy: str
    state_dir: str | None  # None: no configuration file and no --state-dir, so no SINIT is remembered


def settings(args: argparse.Namespace, config: Config) -> Settings:
    """Options over the configuration's keys ([source] spec, [tpm] tcti/locality/timeout, [verify] mode/policy/
    state_dir). The state directory is the daemon's only when its configuration file was read: a run with
    built-in defaults (no /etc/sld/sld.toml) keeps none, as before: there is no daemon configuration to share."""
    state_dir = getattr(args, "state_dir", None) or (config.verify.state_dir if config.path else None)
    return Settings(source=args.source or config.source.spec, tcti=args.tcti or config.tpm.tcti,
                    locality=config.tpm.locality if args.locality is None else args.locality,
                    timeout=config.tpm.timeout, mode=args.mode or config.verify.mode,
                    policy=args.policy or config.verify.policy, state_dir=state_dir)


def _daemon_was_asked(args: argparse.Namespace) -> bool:
    """sld.client offers exactly these invocations to the daemon; reaching here means none answered."""
    return not args.local and not any((args.source, args.tcti, args.mode, args.policy, args.config, args.state_dir)) \
        and args.locality is None


def notice(args: argparse.Namespace, config: Config) -> str:
    """The stderr line that says where this verdict comes from and which configuration it used."""
    why = f"no sld daemon answers on {args.socket}: " if _daemon_was_asked(args) else ""
    used = f"configuration {config.path}" if config.path else \
        f"no {DEFAULT_CONFIG}: the options, else built-in defaults"
    return f"sld: {why}verifying in this process ({used})"


def run(args: argparse.Namespace) -> int:
    """Verify in this process with the configuration file's settings under the options."""
    if args.ak or args.nonce or args.previous or args.format:  # evidence options without --evidence
        from sld.commands.evidence import run as verify_evidence

        return verify_evidence(args)
    from sld.config import load
    from sld.report import verdict_json, verdict_text
    from sld.tpm import Tpm
    from sld.verify import load_policy, verify_source

    config = load(args.config)
    use = settings(args, config)
    print(notice(args, config), file=sys.stderr)
    policy = load_policy(use.policy)
    with Tpm(use.tcti, locality=use.locality, timeout=use.timeout) as tpm:
        verdict = verify_source(use.source, tpm, mode=use.mode, policy=policy, state_dir=use.state_dir)
    print(verdict_json(verdict) if args.json else verdict_text(verdict, sys.stdout.isatty()))
    return verdict.exit_code
