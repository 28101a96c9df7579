"""Reading policy files: the main file, then its per-host drop-ins ``FILE.d/*.toml`` in name order.

The only module of the appraisal that touches the file system for reading; everything it returns
went through :func:`sld.appraisal.model.from_toml`, so a bad file is a ConfigError naming file, key
and reason (exit 2) and never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from sld.appraisal.merge import anchors, loosened, merge
from sld.appraisal.model import Policy, from_toml
from sld.errors import ConfigError


def parse_text(text: str, path: str) -> Policy:
    """One TOML document -> Policy (tomllib recurses per nesting level: 2,000 levels is an error, not a crash)."""
    import tomllib  # here: only a verification with a policy pays for the TOML parser

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not TOML: {err}", file=path) from None
    except RecursionError:
        raise ConfigError("nested too deeply to be a policy", file=path) from None
    return from_toml(data, path)


def read(path: Path) -> Policy:
    """One policy file alone (a main file without its drop-ins, or one drop-in)."""
    try:
        return parse_text(path.read_bytes().decode(), str(path))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read policy: {err}", file=str(path)) from None


def dropins(path: str) -> list[Path]:
    """The per-host drop-ins that complete ``path``: ``PATH.d/*.toml``, sorted by name."""
    directory = Path(f"{path}.d")
    return sorted(directory.glob("*.toml")) if directory.is_dir() else []


class Layers(NamedTuple):
    """A policy as :func:`layers` reads it: whole, and the files it was merged from, each parsed once."""

    policy: Policy  # the main file widened by each drop-in, as :func:`load` returns it
    main: Policy  # the main file alone
    dropins: dict[str, Policy]  # each drop-in alone, by file name, in name order


def layers(path: str) -> Layers:
    """The policy ``path`` names, widened by each of its drop-ins, with the files it came from (``sld policy
    merge`` merges main files and drop-ins apart); every ``after`` must name a part of the file it is in
    or, in a drop-in, of the policy it joins."""
    main = read(Path(path))
    anchors(main)
    policy, found = main, {}
    for extra in dropins(path):
        dropin = read(extra)
        loose = loosened(policy, dropin)
        if loose:  # one host's drop-in must not loosen what the main file says for the fleet
            key, mine, theirs = loose[0]
            raise ConfigError(f"a drop-in may not loosen the policy it completes: {key} is {theirs} here and "
                              f"{mine} in {path}; set it in {path}", key=key, file=str(extra))
        policy, found[extra.name] = merge(policy, dropin), dropin
    return Layers(policy, main, found)


def load(path: str) -> Policy:
    """The policy ``path`` names, widened by each of its drop-ins (:func:`layers`)."""
    return layers(path).policy
