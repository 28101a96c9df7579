"""Rendering for people (aligned tables) and machines (versioned JSON); no decisions are made here."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SCHEMA = 1


def jsonable(obj: Any) -> Any:
    """Plain JSON values from dataclasses, construct Containers, enums and bytes (hex)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not f.name.startswith("_")}
    if isinstance(obj, enum.Enum):
        return obj.name
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

