"""An evidence verdict as an EAT Attestation Result (EAR, draft-ietf-rats-ear-04), unsigned JSON claims.

For relying parties that speak RATS (RFC 9334): ``ear_status`` is the AR4SI trust tier, affirming for a
verified launch, warning when it verified with a warning (a capped bank), contraindicated when a check
failed. The claim names are the draft's JSON labels (§3 ``EAR``, §3.1 ``EAR-appraisal``); sld's own
findings ride in the draft's ``ear_verifier_claims`` slot ("claims with verifier authority, added during
appraisal") under ``sld_``-prefixed names. Signing the EAR (JWT/CWT) is the relying party's transport's
business and is not done here.
"""

from __future__ import annotations

import binascii

from sld import __version__
from sld.evidence.check import EvidenceVerdict
from sld.vocab import CheckStatus, EarStatus, Result

EAT_PROFILE = "tag:ietf.org,2026:rats/ear#04"  # draft-ietf-rats-ear-04 §3
DEVELOPER = "sld, the Secure Launch daemon"  # ar4si verifier-id: who built the verifier (with the build below)
SUBMOD = "drtm"  # the one attester appraised: the dynamic launch (PCR17-22) of the quoting TPM


def ear_status(verdict: EvidenceVerdict) -> EarStatus:
    """The EAR trustworthiness tier (draft-ietf-rats-ear §3.2, ar4si tiers): contraindicated for a failed
    verification, warning when a check warned, affirming otherwise.
    """
    if verdict.result != Result.VERIFIED:
        return EarStatus.CONTRAINDICATED
    return EarStatus.WARNING if verdict.warnings else EarStatus.AFFIRMING


def ear(verdict: EvidenceVerdict, nonce: bytes, issued_at: int, policy: str | None = None) -> dict[str, object]:
    """The EAR claims set; ``eat_nonce`` is the verifier's nonce, base64url without padding (EAT §7.2.2)."""
    status = ear_status(verdict)
    appraisal: dict[str, object] = {
        "ear_status": status,
        "ear_verifier_claims": {
            "sld_failed_checks": [c.id for c in verdict.checks if c.status == CheckStatus.FAIL],
            "sld_warned_checks": [c.id for c in verdict.warnings],
            "sld_first_failure": verdict.failure.as_json() if verdict.failure else None,
            "sld_banks": verdict.banks,
        },
    }
    if policy:
        appraisal["ear_appraisal_policy_ids"] = [policy]
    return {
        "eat_profile": EAT_PROFILE,
        "iat": issued_at,
        "ear_verifier_id": {"developer": DEVELOPER, "build": f"sld {__version__}"},
        "ear_status": status,
        "eat_nonce": binascii.b2a_base64(nonce, newline=False).decode().replace("+", "-").replace("/", "_")
        .rstrip("="),
        "submods": {SUBMOD: appraisal},
    }
