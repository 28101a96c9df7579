"""One assertion per format round trip, as construct's own tests make (tests/declarativeunittest.py).

A format is right only if parsing what was built gives the value back, building what was parsed gives
the bytes back, and the declared size is the size of those bytes; checking the three together means
a test cannot pass on a parser and builder that are wrong in the same way for one direction only.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, TypeVar

import construct as cs

from sld.formats._util import Region, build
from sld.formats.heap import plain

T = TypeVar("T")


def assert_declaration_round_trip(struct: cs.Construct, data: bytes, obj: Any) -> None:
    """``struct`` parses ``data`` to ``obj`` consuming all of it, builds ``obj`` to ``data``, and a
    fixed-size declaration's ``sizeof`` is ``len(data)``."""
    stream = io.BytesIO(data)
    parsed = plain(struct.parse_stream(stream))
    try:
        size = struct.sizeof()
    except cs.SizeofError:
        size = stream.tell()  # data-dependent size: what the parse consumed
    assert (parsed, build(struct, obj, "round trip"), stream.tell(), size) == (obj, data, len(data), len(data))


def assert_round_trip(parse: Callable[[Region], T], rebuild: Callable[[T], bytes], data: bytes, base: int) -> T:
    """A whole structure: ``rebuild(parse(data))`` is ``data`` byte for byte, and parsing that gives the same value."""
    value = parse(Region(data, base))
    rebuilt = rebuild(value)
    again = parse(Region(rebuilt, base))
    assert (rebuilt, len(rebuilt), again) == (data, len(data), value)
    return value
