"""Rendering for people (aligned tables) and machines (versioned JSON); no decisions are made here."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence

from sld.text import count
from sld.vocab import CheckStatus, PcrStatus, Result

TYPE_CHECKING = False  # typing costs sld inspect log's cold start more than the JSON head it renders here
if TYPE_CHECKING:
    from typing import Any

SCHEMA = 1


def jsonable(obj: Any) -> Any:
    """Plain JSON values from dataclasses, construct Containers, enums and bytes (hex)."""
    if hasattr(type(obj), "__dataclass_fields__"):  # a dataclass instance (dataclasses.is_dataclass, not a class)
        import dataclasses  # here: its import costs sld inspect log, which shows none, more than its JSON head

        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not f.name.startswith("_")}
    if isinstance(obj, enum.Enum):
        return obj.value if isinstance(obj, str) else obj.name  # a StrEnum (sld.vocab) is its value
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def dump_json(kind: str, payload: Mapping[str, Any]) -> str:
    """One JSON object: ``schema`` and ``kind`` first so consumers can dispatch before reading more."""
    return json.dumps({"schema": SCHEMA, "kind": kind, **jsonable(payload)}, indent=2, sort_keys=False)


def table(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """Left-aligned columns separated by two spaces, the way systemctl and tpm2-tools print."""
    cells = [[str(c) for c in row] for row in rows]
    if header:
        cells.insert(0, list(header))
    if not cells:
        return ""
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(max(len(r) for r in cells))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in cells]
    return "\n".join(lines)



GREEN, RED, YELLOW, GREY = "32", "31", "33", "90"
COLOURS: dict[str, str] = {CheckStatus.PASS: GREEN, PcrStatus.MATCH: GREEN, Result.VERIFIED: GREEN,
                           CheckStatus.FAIL: RED, PcrStatus.MISMATCH: RED, Result.FAILED: RED,
                           CheckStatus.SKIP: GREY, CheckStatus.WARN: YELLOW, PcrStatus.RESUMABLE: YELLOW,
                           PcrStatus.NOT_LAUNCHED: YELLOW, PcrStatus.NOT_MEASURED: YELLOW,
                           PcrStatus.NOT_COVERED: RED}


def paint(word: str, tty: bool) -> str:
    """Colour a status word, only for a terminal (never in pipes, files or the journal)."""
    code = COLOURS.get(word)
    return f"\033[{code}m{word}\033[0m" if tty and code else word


def verdict_json(verdict: Any) -> str:
    """The versioned machine form of a verdict (``kind`` "verdict")."""
    payload = jsonable(verdict)
    payload["exit_code"] = verdict.exit_code
    for check in payload["checks"]:
        check["title"] = next(c.title for c in verdict.checks if c.id == check["id"])
    for pcr, state in zip(payload["pcrs"], verdict.pcrs, strict=True):
        pcr["banks"] = {bank: status.value for bank, status in state.bank_states(verdict.banks).items()}
    return dump_json("verdict", payload)


def verdict_text(verdict: Any, tty: bool = False) -> str:
    """A table of checks and a table of PCRs, then the one-line verdict."""
    head = f"source {verdict.source}, mode {verdict.mode}" + (f", layout {verdict.layout}" if verdict.layout else "")
    checks = table(((paint(c.status, tty), c.title, c.detail) for c in verdict.checks), ("STATUS", "CHECK", "DETAIL"))
    lines = [head, "", checks]
    rows: list[tuple[object, ...]] = []
    differ: list[str] = []
    for s in verdict.pcrs:
        for bank in verdict.banks:
            exp, act = s.expected.get(bank, b""), s.actual.get(bank, b"")
            rows.append((f"PCR{s.pcr}", bank, paint(s.bank_status(bank), tty), exp.hex()[:16] + "…",
                         act.hex()[:16] + "…", len(s.events)))
            if exp != act:
                differ += [f"PCR{s.pcr} {bank} differs:", f"  expected {exp.hex()}", f"  actual   {act.hex()}"]
        # an allocated bank the log has no digests for is listed, never left out (pcr.banks)
        rows += [(f"PCR{s.pcr}", bank, paint(s.bank_status(bank), tty), "not covered by the log", "-", "-")
                 for bank in s.uncovered]
    if rows:
        lines += ["", table(rows, ("PCR", "BANK", "STATUS", "EXPECTED", "ACTUAL", "EVENTS"))]
    if differ:  # prefixes alike tell nothing: where two values differ, both are printed whole
        lines += ["", *differ]
    if verdict.extended:
        lines += ["", f"extended {count(len(verdict.extended), 'deferred event')}: {list(verdict.extended)}"]
    lines += ["", f"verdict: {paint(verdict.result, tty)}: {verdict.summary}"]
    return "\n".join(lines)
