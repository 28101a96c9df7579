"""The single bridge between construct's exceptions and sld's FormatError, and the byte region parsers read.

Every declaration in ``sld.formats`` is parsed through :meth:`Region.parse` so that a short buffer, a
bad magic or a failed validation becomes a FormatError naming the structure, the field construct was
in, and the absolute address (physical address or file offset) of the structure.

construct is imported where a declaration is parsed or built (whose caller holds one, so it is loaded
already): a parser that reads by ``struct`` alone, as the event log's does, takes a Region without
paying for construct (a third of a cold ``sld inspect log``).
"""

from __future__ import annotations

import struct
from functools import lru_cache

from sld.errors import FormatError

TYPE_CHECKING = False  # typing, like construct, costs the event log's cold start more than it parses
if TYPE_CHECKING:
    from typing import Any, overload

    import construct as cs


def _field_of(err: cs.ConstructError) -> str | None:
    path = getattr(err, "path", None)
    if not path:
        return None
    parts = [p.strip() for p in str(path).replace("(parsing)", "").replace("(building)", "").split("->")]
    parts = [p for p in parts if p]
    return ".".join(parts) or None


@lru_cache(maxsize=512)
def _fixed_size(struct: cs.Construct) -> int | None:
    """The declaration's size when it does not depend on the data (construct's ``sizeof``), else None."""
    import construct as cs

    try:
        return int(struct.sizeof())
    except cs.SizeofError:
        return None


class Region:
    """Bytes that sit at an absolute address (physical address or file offset), sliced without copying.

    Every parser takes one of these instead of a ``(data, base)`` pair: a slice keeps its address, so an
    error deep in a walk still names where in memory the bad byte is, and a walk over N elements copies
    each byte once (linear), never ``data[offset:]`` per element.
    """

    __slots__ = ("_view", "base")

    def __init__(self, data: bytes | bytearray | memoryview, base: int = 0) -> None:
        self._view = memoryview(data).cast("B") if not isinstance(data, memoryview) or data.format != "B" else data
        self.base = base

    def __len__(self) -> int:
        return len(self._view)

    def __bytes__(self) -> bytes:
        """The region's bytes: the ``bytes`` it was made from when it spans them all (immutable, so shared,
        not copied: a long walk's records are then slices of the caller's buffer), else a copy."""
        whole = self._view.obj
        if type(whole) is bytes and len(whole) == len(self._view):
            return whole
        return bytes(self._view)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Region):
            return self.base == other.base and self._view == other._view
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Region(0x{self.base:x}, {len(self)} bytes)"

    if TYPE_CHECKING:
        @overload
        def __getitem__(self, key: int) -> int: ...

        @overload
        def __getitem__(self, key: slice) -> Region: ...

    def __getitem__(self, key: int | slice) -> int | Region:
        if isinstance(key, int):
            return int(self._view[key])
        start, stop, step = key.indices(len(self._view))
        if step != 1:
            raise ValueError("a Region slice is contiguous")
        return Region(self._view[start:max(start, stop)], self.base + start)

    def address(self, offset: int) -> int:
        """The absolute address of ``offset`` bytes into the region."""
        return self.base + offset

    def uint(self, offset: int, width: int) -> int:
        """A little-endian unsigned integer of ``width`` bytes at ``offset`` (the caller checked bounds)."""
        return int.from_bytes(self._view[offset : offset + width], "little")

    def unpack(self, fmt: str, offset: int) -> tuple[Any, ...]:
        """``struct.unpack_from`` in place: the hot per-record header of a long walk, proven equal to its
        declaration by the format's tests."""
        return struct.unpack_from(fmt, self._view, offset)

    def copy(self, start: int, stop: int) -> bytes:
        """A copy of ``[start:stop]`` (no intermediate Region: the per-element path of a long walk)."""
        return bytes(self._view[start:stop])

    def parse(self, struct: cs.Construct, structure: str, offset: int = 0) -> Any:
        """Parse ``struct`` at ``offset``; errors carry the structure's absolute address.

        A fixed-size declaration reads only its own bytes; any other reads the rest of the region, so a
        caller walking records bounds each one with a slice first.
        """
        import construct as cs

        if offset < 0 or offset > len(self):
            raise FormatError(structure, f"starts outside the {len(self)}-byte region", offset=self.base + offset)
        size = _fixed_size(struct)
        end = len(self) if size is None else min(len(self), offset + size)
        try:
            return struct.parse(bytes(self._view[offset:end]))
        except cs.ConstructError as err:
            msg = str(err).split("\n")[-1]
            if isinstance(err, cs.StreamError):
                msg = f"truncated: the region holds only {len(self) - offset} bytes from here"
            raise FormatError(structure, msg, field=_field_of(err), offset=self.base + offset) from None


def region(data: bytes | bytearray | memoryview | Region, base: int = 0) -> Region:
    """``data`` as a Region at ``base``; a Region passes through (its own address wins)."""
    return data if isinstance(data, Region) else Region(data, base)


def build(struct: cs.Construct, obj: Any, structure: str) -> bytes:
    """Build ``obj`` with ``struct``; a value that does not fit becomes a FormatError, not a traceback."""
    import construct as cs

    try:
        return bytes(struct.build(obj))
    except cs.ConstructError as err:
        raise FormatError(structure, str(err).split("\n")[-1], field=_field_of(err)) from None
