"""Building what a scenario's platform shows, with the same format declarations sld parses with.

The securityfs view (``slaunch/txt/*`` and ``slaunch/eventlog``) is what a Secure Launch kernel
exports; the manifest records the PCR values the launch leaves, replayed from the built log.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sld.formats.eventlog import NewEvent, build_crypto_agile, build_tpm12_container, parse_log
from sld.formats.registers import SECURITYFS_REGISTER, SECURITYFS_WIDTH, format_securityfs_value
from sld.replay import DRTM_PCRS, replay
from sld.sim.scenarios import LAYOUTS, PlatformSpec, Scenario, SimEvent, events_for, scenario

LOG_BUFFER_SIZE = 0x10000
STS_LAUNCHED = 0x18041  # SENTER.DONE, MEM-CONFIG-LOCK, LOCALITY1/2.OPEN (SDG B.1.1)
STS_NOT_LAUNCHED = 0x3  # SENTER.DONE and SEXIT.DONE: the tboot-devel false positives
STS_AFTER_RESET = 0x2  # SEXIT.DONE only: a reset after a failed launch
DIDVID = 0x1B00C8086


@dataclass(frozen=True)
class Platform:
    scenario: Scenario
    layout: str
    registers: dict[str, int]
    log: bytes
    events: tuple[SimEvent, ...]

    def expected_pcrs(self) -> dict[str, dict[str, str]]:
        """PCR17-22 as the launch leaves them: the replay of the log before any tampering."""
        values = replay(parse_log(self.untampered_log()), pcrs=DRTM_PCRS).values
        return {bank: {str(p): v.hex() for p, v in pcrs.items()} for bank, pcrs in values.items()}

    def untampered_log(self) -> bytes:
        return _build_log(self.scenario.spec, self.events)

    def manifest(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "layout": self.layout,
            "verdict": self.scenario.verdict,
            "exit_code": self.scenario.exit_code,
            "log_format": self.scenario.spec.log_format,
            "banks": list(self.scenario.spec.banks),
            "registers": {k: f"0x{v:x}" for k, v in self.registers.items()},
            "expected_pcrs": self.expected_pcrs(),
        }

    def write_securityfs(self, directory: str | os.PathLike[str]) -> None:
        root = Path(directory)
        (root / "txt").mkdir(parents=True, exist_ok=True)
        for name, reg in SECURITYFS_REGISTER.items():
            width = SECURITYFS_WIDTH[name] * 4
            (root / "txt" / name).write_bytes(format_securityfs_value(name, self.registers[reg] & ((1 << width) - 1)))
        (root / "eventlog").write_bytes(self.log)
        (root / "manifest.json").write_text(_json(self.manifest()))


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2) + "\n"


def _build_log(spec: PlatformSpec, events: tuple[SimEvent, ...]) -> bytes:
    new = [NewEvent(e.pcr, e.type, e.digests, e.data) for e in events]
    if spec.log_format == "tpm12":
        return build_tpm12_container(new, container_size=LOG_BUFFER_SIZE // 2)
    return build_crypto_agile(spec.banks, new, size=LOG_BUFFER_SIZE)


def _tamper(events: list[SimEvent], index: int) -> list[SimEvent]:
    """Replace one window event's data and digest after the fact, as an attacker editing the log would."""
    window = [i for i, e in enumerate(events) if e.window]
    target = window[index]
    ev = events[target]
    data = ev.data + b" (edited)"
    digests = {bank: hashlib.new(bank, data).digest() for bank in ev.digests}
    return events[:target] + [replace(ev, data=data, digests=digests)] + events[target + 1 :]


def _registers(spec: PlatformSpec) -> dict[str, int]:
    if not spec.launched:
        sts = STS_NOT_LAUNCHED
    elif spec.errorcode & 0xFFFF8000 == 0xC0008000:
        sts = STS_AFTER_RESET
    else:
        sts = STS_LAUNCHED
    return {"STS": sts, "ESTS": 0, "ERRORCODE": spec.errorcode, "DIDVID": DIDVID, "VER.EMIF": 0x80000000,
            "SCRATCHPAD": 0, "E2STS": 0x2 if sts == STS_LAUNCHED else 0x0}


def build_platform(name: str, layout: str = "v16") -> Platform:
    if layout not in LAYOUTS:
        from sld.errors import ConfigError

        raise ConfigError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}", key="layout")
    sc = scenario(name)
    spec = sc.spec
    events = tuple(events_for(spec, layout))
    shown = list(events)
    if spec.tamper_event is not None:
        shown = _tamper(shown, spec.tamper_event)
    log = _build_log(spec, tuple(shown))
    if spec.truncate_log_at is not None:
        log = log[: spec.truncate_log_at]
    return Platform(sc, layout, _registers(spec), log, events)
