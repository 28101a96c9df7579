"""``sld verify --evidence FILE --ak PEM --nonce HEX``: another machine's launch, verified from its evidence.

No TXT and no TPM: the quotes, the AK the verifier trusts and its nonce are all it takes. The exit code
is the verdict, as for ``sld verify`` (0 verified, 1 failed, 2 usage); ``--format ear`` prints an EAT
Attestation Result (sld.evidence.ear) instead of sld's own JSON.
"""

from __future__ import annotations

import json
import time

from sld.errors import ConfigError
from sld.evidence.build import nonce_from_hex
from sld.evidence.bundle import load_evidence
from sld.evidence.check import EvidenceVerdict, appraise
from sld.evidence.keys import load_pem

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from types import SimpleNamespace

def _nonce(value: str | None) -> bytes:
    if not value:
        raise ConfigError("the verifier's nonce is required with --evidence", key="--nonce")
    return nonce_from_hex(value)  # the rule sld attest holds the nonce to: hex, 16..64 bytes


def _text(verdict: EvidenceVerdict) -> str:
    head = f"evidence: {verdict.result}"
    if verdict.failure:
        head += f" ({verdict.failure.id}: {verdict.failure.detail})"
    rows: list[tuple[str, str, str]] = [(c.id, c.status, c.detail) for c in verdict.checks]
    rows += [(f"bank {bank}", status, "") for bank, status in verdict.banks.items()]
    width = max(len(r[0]) for r in rows)
    return "\n".join([head, *(f"{i.ljust(width)}  {str(s).ljust(5)}  {d}".rstrip() for i, s, d in rows)])


def render(verdict: EvidenceVerdict, fmt: str, nonce: bytes, policy: str | None) -> str:
    """What ``sld verify --evidence`` prints in each ``--format`` (``--json`` is ``--format json``)."""
    if fmt == "ear":
        from sld.evidence.ear import ear

        return json.dumps(ear(verdict, nonce, int(time.time()), policy), indent=2)
    if fmt == "json":
        return json.dumps({"schema": 1, "kind": "evidence-verdict", "result": verdict.result,
                           "failure": verdict.failure.as_json() if verdict.failure else None,
                           "checks": [c.as_json() for c in verdict.checks], "banks": verdict.banks}, indent=2)
    return _text(verdict)


def run(args: argparse.Namespace | SimpleNamespace) -> int:
    """``sld verify --evidence FILE``: another host's quote checked with only its AK's public key and the
    nonce sent to it (no TPM, no platform read here); the options around it are refused without it.
    """
    if not args.evidence:
        raise ConfigError("--ak, --nonce, --previous and --format ear go with --evidence FILE", key="--evidence")
    if not args.ak:
        raise ConfigError("the AK's PEM public key is required with --evidence", key="--ak")
    nonce = _nonce(args.nonce)
    ak = load_pem(args.ak)
    policy = None
    if args.policy:
        from sld.appraisal.files import load as load_policy

        policy = load_policy(args.policy)
    previous = load_evidence(args.previous, "--previous") if args.previous else None
    verdict = appraise(load_evidence(args.evidence), ak, nonce, policy=policy, previous=previous)
    print(render(verdict, args.format or ("json" if args.json else "text"), nonce, args.policy))
    return verdict.exit_code
