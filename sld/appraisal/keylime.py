"""A policy as Keylime's ``tpm_policy``: the values PCR17 and PCR18 may hold, for a fleet verifier (pure).

Keylime's verifier compares each quoted PCR with a list of allowed values (keylime
``tpm_util.readPolicy`` / ``Tpm.check_pcrs``). Every combination of the allowed digests of a PCR's
parts, replayed in measurement order from the zeros a dynamic launch resets PCR17-22 to (spec §6,
``_TPM_Hash_Start``), is one allowed value; the all-ones value of a TPM that saw no launch never is.
"""

from __future__ import annotations

import itertools

from sld.appraisal.model import Policy
from sld.errors import ConfigError
from sld.formats.names import hashlib_name
from sld.replay import extended, hashable

KEYLIME_PCRS = (17, 18)
MAX_VALUES = 4096  # per PCR: beyond that a policy has too many alternatives to enumerate for Keylime


def pcr_values(policy: Policy, pcr: int, bank: str) -> list[str]:
    """Every value ``pcr`` may hold in ``bank`` after the policy's parts, as lower-case hex."""
    if not hashable(bank):  # as replay: sm3_256 where OpenSSL has sm3
        raise ConfigError(f"cannot replay {bank} values here: Python's hashlib has no {hashlib_name(bank)}; export "
                          "another bank (--bank)", file=policy.path)
    parts = [p for p in policy.parts if p.pcr == pcr]
    missing = [p.name for p in parts if bank not in p.digests]
    if missing:
        raise ConfigError(f"part {missing[0]!r} lists no {bank} digest; export another bank (--bank)",
                          key=f"part.{missing[0]}", file=policy.path)
    count = 1
    for p in parts:
        count *= len(p.digests[bank])
    if count > MAX_VALUES:
        raise ConfigError(f"PCR{pcr} has {count} allowed {bank} values (more than {MAX_VALUES})", file=policy.path)
    values = [extended(bank, pcr, combination).hex()
              for combination in itertools.product(*(p.digests[bank] for p in parts))]
    return list(dict.fromkeys(values))


def refusal(policy: Policy) -> str | None:
    """Why ``policy`` has no Keylime form, if it has none: with ``allow_extra`` an event no part names
    may be extended anywhere in PCR17/18, so their values cannot be enumerated, and an export of the
    parts' values alone would make Keylime reject hosts sld approves."""
    if policy.allow_extra:
        return ("allow_extra = true tolerates events no part names, so the PCR17/18 values are not "
                "predictable and Keylime would reject hosts this policy approves; set allow_extra = false "
                "(list every event as a part) to export")
    return None


def tpm_policy(policy: Policy, bank: str = "sha256") -> dict[str, list[str]]:
    """Keylime's ``tpm_policy`` object for PCR17/18 in ``bank`` (the agent's quote hash algorithm)."""
    if not policy.parts:
        raise ConfigError("the policy has no parts (an older [pcrs]/[[events]] policy cannot be exported)",
                          file=policy.path)
    return {str(pcr): pcr_values(policy, pcr, bank) for pcr in KEYLIME_PCRS}
