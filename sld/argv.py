"""Command lines read without argparse, from the tables argparse is given: one reader for the cold paths.

A cold ``sld verify`` (this host, or another host's evidence) is a short process whose time is mostly
imports; building sld's argparse parser (and the shutil, bz2, lzma and gettext modules argparse loads to
format help) costs it ~10 ms (benchmarks/verify_cold.py, benchmarks/verify_evidence.py). :func:`read`
takes a command line made only of options it can read exactly as argparse would; anything else (help, an
abbreviation, a repeat, a bad value, a value that looks like an option or is ``--``) it leaves to argparse, which then
reads and reports it. tests/unit/test_cli.py compares what it makes with argparse's namespace.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing and collections.abc are for the annotations: the paths this serves are cold starts
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, TypeAlias

    Spec: TypeAlias = Mapping[str, Any]  # the keywords argparse's add_argument takes for the option, of which
    # read() knows action="store_true", type, choices and default


def read(argv: Sequence[str], options: Mapping[str, Spec]) -> dict[str, Any] | None:
    """Every one of ``options``, by option string, its value as argparse makes it; None if argparse must read
    ``argv``. Each option at most once and spelt out: ``--opt VALUE``, ``--opt=VALUE``, a switch."""
    switches = {option for option, spec in options.items() if spec.get("action") == "store_true"}
    given: dict[str, Any] = {}
    rest = list(argv)
    while rest:
        option, eq, value = rest.pop(0).partition("=")
        spec = options.get(option)
        if spec is None or option in given or (eq and option in switches):
            return None
        if option in switches:
            given[option] = True
            continue
        if not eq:
            if not rest or rest[0].startswith("-"):
                return None
            value = rest.pop(0)
        elif value == "--":  # argparse 3.11/3.12 reads a value of "--" as the end of options even after "="
            return None
        try:
            given[option] = spec.get("type", str)(value)
        except ValueError:
            return None
        if "choices" in spec and given[option] not in spec["choices"]:
            return None
    return {option: given.get(option, spec.get("default", False if option in switches else None))
            for option, spec in options.items()}


def attribute(option: str) -> str:
    """The namespace attribute argparse stores ``--some-option`` under (``some_option``)."""
    return option[2:].replace("-", "_")
