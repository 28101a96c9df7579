"""sld.records.Record behaves as ``@dataclass(frozen=True)`` does, with shared methods instead of generated ones."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sld.config import Config
from sld.records import Record
from sld.verify import Verdict


class Rec(Record):
    a: int
    b: str = "b"
    c: list[int] = dataclasses.field(default_factory=list)
    hidden: int = dataclasses.field(default=0, repr=False, compare=False)
    later: tuple[int, ...] = dataclasses.field(default=(), init=False)


@dataclasses.dataclass(frozen=True)
class Dc:
    a: int
    b: str = "b"
    c: list[int] = dataclasses.field(default_factory=list)
    hidden: int = dataclasses.field(default=0, repr=False, compare=False)
    later: tuple[int, ...] = dataclasses.field(default=(), init=False)


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((1,), {}), ((1, "x"), {}), ((1, "x", [2], 3), {}), ((), {"a": 1, "hidden": 4}), ((1,), {"c": [5]}),
    ((), {}), ((1, "x", [2], 3, 4), {}), ((1,), {"a": 2}), ((1,), {"nope": 1}), ((1,), {"later": (1,)}),
]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_construction_repr_and_errors_match_dataclasses(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        want: Any = Dc(*args, **kwargs)
    except TypeError as e:
        with pytest.raises(TypeError) as got:
            Rec(*args, **kwargs)
        assert str(got.value).split("() ", 1)[1] == str(e).split("() ", 1)[1]  # same reason, other class name
        return
    rec = Rec(*args, **kwargs)
    assert repr(rec).replace("Rec(", "Dc(", 1) == repr(want)
    assert dataclasses.asdict(rec) == dataclasses.asdict(want)
    assert rec.later == ()


def test_equality_hash_frozen_and_replace() -> None:
    one, same, other = Rec(1, hidden=1), Rec(1, hidden=2), Rec(2)
    assert one == same and hash(Rec(1, "x", ())) == hash(Rec(1, "x", (), 9))  # type: ignore[arg-type]
    assert one != other and one != Dc(1) and (one == 1) is False
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'a'"):
        one.a = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'b'"):
        del one.b  # type: ignore[misc]
    moved = dataclasses.replace(one, b="y")
    assert (moved.a, moved.b, moved.hidden, one.b) == (1, "y", 1, "b")
    assert [f.name for f in dataclasses.fields(Rec)] == [f.name for f in dataclasses.fields(Dc)]
    assert Rec.__match_args__ == Dc.__match_args__


def test_a_body_keeps_its_own_methods_and_an_own_eq_still_hashes_the_fields() -> None:
    class Own(Record):
        a: int

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Own) and abs(self.a - other.a) < 2

        def __repr__(self) -> str:
            return "own"

    assert Own(1) == Own(2) and repr(Own(1)) == "own" and hash(Own(1)) == hash((1,))


def test_sld_records_compile_nothing_per_class() -> None:
    """The point of Record: no class carries a generated __init__/__eq__/__repr__ of its own."""
    for cls in (Config, Verdict, Rec):
        for name in ("__init__", "__eq__", "__repr__", "__setattr__", "__delattr__", "__hash__"):
            assert name not in cls.__dict__ or cls.__dict__[name] is Record.__dict__[name], (cls, name)
