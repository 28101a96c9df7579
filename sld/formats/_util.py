"""The single bridge between construct's exceptions and sld's FormatError.

Every declaration in ``sld.formats`` is parsed through :func:`parse_at` so that a short buffer, a bad
magic or a failed validation becomes a FormatError naming the structure, the field construct was in,
and the absolute address (physical address or file offset) of the structure.
"""

from __future__ import annotations

from typing import Any

import construct as cs

from sld.errors import FormatError


def _field_of(err: cs.ConstructError) -> str | None:
    path = getattr(err, "path", None)
    if not path:
        return None
    parts = [p.strip() for p in str(path).replace("(parsing)", "").replace("(building)", "").split("->")]
    parts = [p for p in parts if p]
    return ".".join(parts) or None


def parse_at(struct: cs.Construct, data: bytes | memoryview, offset: int, structure: str, base: int = 0) -> Any:
    """Parse ``struct`` at ``data[offset:]``; errors carry ``base + offset`` as the structure's address."""
    if offset < 0 or offset > len(data):
        raise FormatError(structure, f"starts outside the {len(data)}-byte region", offset=base + offset)
    try:
        return struct.parse(bytes(data[offset:]))
    except cs.ConstructError as err:
        msg = str(err).split("\n")[-1]
        if isinstance(err, cs.StreamError):
            msg = f"truncated: the region holds only {len(data) - offset} bytes from here"
        raise FormatError(structure, msg, field=_field_of(err), offset=base + offset) from None


def build(struct: cs.Construct, obj: Any, structure: str) -> bytes:
    """Build ``obj`` with ``struct``; a value that does not fit becomes a FormatError, not a traceback."""
    try:
        return bytes(struct.build(obj))
    except cs.ConstructError as err:
        raise FormatError(structure, str(err).split("\n")[-1], field=_field_of(err)) from None
