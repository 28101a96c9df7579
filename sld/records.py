"""Frozen record classes: a subclass of ``Record`` is a ``@dataclass(frozen=True)`` without per-class generated source.

CPython 3.11's ``dataclasses`` writes ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__`` and
``__delattr__`` as source text for every class and compiles each with ``exec``: 0.4-1.1 ms per class, ~18 ms
for the 26 classes a cold ``sld verify`` imports (more than txt-stat, tpm2_eventlog or tpm2_pcrread each take
to run; benchmarks/verify_cold.py). A record is still processed by ``dataclasses`` (so ``fields``,
``replace``, ``asdict``, ``__match_args__`` and ``field(default=..., default_factory=..., repr=...,
compare=...)`` work as for any dataclass) and takes those six methods from this base instead: one shared
function each, driven by the field tuples worked out once per class. Semantics are dataclasses': positional
or keyword arguments in field order, defaults and factories, ``TypeError`` for a missing, repeated or unknown
argument, ``FrozenInstanceError`` on assignment or deletion, equality and hash over the ``compare`` fields of
the same class, repr over the ``repr`` fields. Methods a class body defines itself are kept, as
``dataclasses`` keeps them. Type checkers see a frozen dataclass (PEP 681 ``dataclass_transform``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, dataclass_transform

_MISSING = dataclasses.MISSING


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
class Record:
    """Base of sld's immutable values (verdicts, checks, parsed tables, configuration sections)."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    __record_init__: ClassVar[tuple[dataclasses.Field[Any], ...]]  # init fields, in order
    __record_rest__: ClassVar[tuple[dataclasses.Field[Any], ...]]  # field(init=False)
    __record_compare__: ClassVar[tuple[str, ...]]
    __record_repr__: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own_eq, own_hash = "__eq__" in cls.__dict__, cls.__dict__.get("__hash__", Record.__hash__)
        dataclasses.dataclass(init=False, repr=False, eq=False)(cls)  # fields and their flags; nothing compiled
        fields = dataclasses.fields(cls)
        cls.__record_init__ = tuple(f for f in fields if f.init)
        cls.__record_rest__ = tuple(f for f in fields if not f.init)
        cls.__record_compare__ = tuple(f.name for f in fields if f.compare)
        cls.__record_repr__ = tuple(f.name for f in fields if f.repr)
        if own_eq and own_hash is None:  # a body's own __eq__ left __hash__ None: dataclasses hashes the fields
            cls.__hash__ = Record.__hash__  # type: ignore[method-assign]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        params = cls.__record_init__
        if len(args) > len(params):  # worded as CPython words it for a generated __init__
            needed = 1 + sum(f.default is _MISSING and f.default_factory is _MISSING for f in params)
            takes = f"from {needed} to {len(params) + 1}" if needed <= len(params) else f"{needed}"
            raise TypeError(f"{cls.__qualname__}.__init__() takes {takes} positional arguments "
                            f"but {len(args) + 1} were given")
        put = object.__setattr__
        for f, value in zip(params, args, strict=False):  # the first len(args) parameters
            if f.name in kwargs:
                raise TypeError(f"{cls.__qualname__}.__init__() got multiple values for argument '{f.name}'")
            put(self, f.name, value)
        for f in params[len(args):]:
            if f.name in kwargs:
                put(self, f.name, kwargs.pop(f.name))
            elif f.default is not _MISSING:
                put(self, f.name, f.default)
            elif f.default_factory is not _MISSING:
                put(self, f.name, f.default_factory())
            else:
                raise TypeError(f"{cls.__qualname__}.__init__() missing 1 required positional argument: '{f.name}'")
        for name in kwargs:  # what is left names no parameter
            raise TypeError(f"{cls.__qualname__}.__init__() got an unexpected keyword argument '{name}'")
        for f in cls.__record_rest__:
            put(self, f.name, f.default if f.default is not _MISSING else f.default_factory())  # type: ignore[operator]
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__record_compare__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_repr__)
        return f"{type(self).__qualname__}({shown})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
