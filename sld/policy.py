"""An operator's expectations beyond "the TPM equals the log": known-good PCR values and digests
that must be measured (e.g. the approved kernel's MLE hash), from a TOML file.

    [pcrs.sha256]
    17 = "hex..."            # the TPM's PCR17 in the sha256 bank must equal this
    [[events]]
    pcr = 17                 # optional
    type = 0x404             # optional (EVTYPE_MLE_HASH)
    sha256 = "hex..."        # a digest per bank; the log must hold an event matching all given fields
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sld.errors import ConfigError
from sld.formats.eventlog import EventLog
from sld.formats.names import DIGEST_SIZE


@dataclass(frozen=True)
class ExpectedEvent:
    digests: dict[str, bytes]
    pcr: int | None = None
    type: int | None = None


@dataclass(frozen=True)
class Policy:
    pcrs: dict[str, dict[int, bytes]]
    events: tuple[ExpectedEvent, ...]
    path: str = ""


def _digest(value: Any, bank: str, key: str, path: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != DIGEST_SIZE.get(bank, -1):
        raise ConfigError(f"expected {DIGEST_SIZE.get(bank, '?')} bytes of hex for {bank}", key=key, file=path)
    return raw


def load(path: str) -> Policy:
    import tomllib  # here, not at the top: only a verification with a policy file pays for the TOML parser

    try:
        with open(path, "rb") as f:
            data = tomllib.loads(f.read().decode())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read policy: {err}", file=path) from None
    unknown = set(data) - {"pcrs", "events"}
    if unknown:
        raise ConfigError(f"unknown section {sorted(unknown)[0]!r} (known: pcrs, events)", file=path)
    pcrs: dict[str, dict[int, bytes]] = {}
    for bank, values in data.get("pcrs", {}).items():
        if bank not in DIGEST_SIZE or not isinstance(values, dict):
            raise ConfigError(f"unknown bank {bank!r}", key=f"pcrs.{bank}", file=path)
        for pcr, value in values.items():
            if not pcr.isdigit() or not 0 <= int(pcr) < 24:
                raise ConfigError("PCR index must be 0..23", key=f"pcrs.{bank}.{pcr}", file=path)
            pcrs.setdefault(bank, {})[int(pcr)] = _digest(value, bank, f"pcrs.{bank}.{pcr}", path)
    events = []
    for i, ev in enumerate(data.get("events", [])):
        key = f"events[{i}]"
        extra = set(ev) - {"pcr", "type"} - set(DIGEST_SIZE)
        if extra or not set(ev) & set(DIGEST_SIZE):
            raise ConfigError(f"needs a digest (sha1, sha256, ...) and only pcr/type besides; got {sorted(ev)}",
                              key=key, file=path)
        digests = {b: _digest(v, b, f"{key}.{b}", path) for b, v in ev.items() if b in DIGEST_SIZE}
        events.append(ExpectedEvent(digests, ev.get("pcr"), ev.get("type")))
    return Policy(pcrs, tuple(events), path)


def violations(policy: Policy, log: EventLog, actual: Mapping[str, Mapping[int, bytes]]) -> list[str]:
    """What the platform does not meet; empty when the policy holds (pure)."""
    out = []
    for bank, values in policy.pcrs.items():
        for pcr, want in values.items():
            got = actual.get(bank, {}).get(pcr)
            if got is None:
                out.append(f"PCR{pcr} {bank} not read (bank not in the log or TPM)")
            elif got != want:
                out.append(f"PCR{pcr} {bank} is {got.hex()[:16]}…, policy wants {want.hex()[:16]}…")
    for want_ev in policy.events:
        if not any((want_ev.pcr is None or e.pcr == want_ev.pcr) and (want_ev.type is None or e.type == want_ev.type)
                   and all(e.digests.get(b) == d for b, d in want_ev.digests.items()) for e in log.events):
            shown = ", ".join(f"{b}:{d.hex()[:16]}…" for b, d in want_ev.digests.items())
            out.append(f"no event with {shown}" + (f" in PCR{want_ev.pcr}" if want_ev.pcr is not None else ""))
    return out
