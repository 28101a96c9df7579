"""``sld attest --nonce HEX``: evidence for a remote verifier (docs/evidence.md), written to -o FILE or stdout.

A plain ``sld attest --nonce HEX [-o FILE] [--socket PATH]`` asks the running daemon (no root needed: its
control socket checks peer credentials as for ``sld verify``); with --local, --source, --tcti or --locality,
or with no daemon answering, the evidence is collected in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from sld.errors import ConfigError


def _write(evidence: dict[str, Any], output: str | None) -> None:
    text = json.dumps(evidence, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise ConfigError(f"cannot write the evidence: {err.strerror}", key="-o", file=output) from None
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _from_daemon(path: str, nonce: bytes) -> dict[str, Any] | int | None:
    """The daemon's evidence; an exit code once a refusal is reported; None when no daemon answers."""
    from sld.client import ask

    try:
        answer = ask(path, json.dumps({"cmd": "attest", "nonce": nonce.hex()}).encode() + b"\n")
    except PermissionError:
        print(f"sld: {path}: permission denied (the daemon's [control] group admits an agent)", file=sys.stderr)
        return 2
    except OSError:
        return None
    try:
        reply = json.loads(answer)
    except ValueError:
        reply = {"error": f"not an sld daemon's answer: {answer[:80]!r}"}
    if isinstance(reply, dict) and reply.get("kind") == "evidence":
        return reply
    error = reply.get("error") if isinstance(reply, dict) else reply
    print(f"sld: the daemon on {path} did not attest: {error} (sld attest --local attests in this process)",
          file=sys.stderr)
    code = reply.get("exit_code", 2) if isinstance(reply, dict) else 2
    return code if isinstance(code, int) else 2


def run(args: argparse.Namespace) -> int:
    """The nonce checked first (16..64 bytes), then the daemon's evidence or this process's, written out."""
    from sld.evidence.build import nonce_from_hex

    nonce = nonce_from_hex(args.nonce)
    local = args.local or any(v is not None for v in (args.source, args.tcti, args.locality, args.config, args.handle))
    evidence = None if local else _from_daemon(args.socket, nonce)
    if isinstance(evidence, int):
        return evidence
    _write(evidence if evidence is not None else _collect(args, nonce), args.output)
    return 0


def _collect(args: argparse.Namespace, nonce: bytes) -> dict[str, Any]:
    from sld.ak import AttestationKey
    from sld.config import load
    from sld.evidence.collect import collect
    from sld.tpm import Tpm

    config = load(args.config)
    used = f"configuration {config.path}" if config.path else "no configuration file, built-in defaults"
    print(f"sld: collecting evidence in this process ({used})", file=sys.stderr)
    locality = config.tpm.locality if args.locality is None else args.locality
    handle = config.attest.ak_handle if args.handle is None else args.handle
    with Tpm(args.tcti or config.tpm.tcti, locality=locality, timeout=config.tpm.timeout) as tpm:
        return collect(args.source or config.source.spec, AttestationKey(tpm, handle), nonce)
