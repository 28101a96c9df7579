"""/etc/sld/sld.toml -> frozen dataclasses. Unknown keys, wrong types and bad values are errors that
name the file and the key (exit code 2), so a typo never silently becomes a default.

The dataclasses are the schema: each field's type and default is what ``conf/sld.toml`` documents.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sld.client import DEFAULT_SOCKET
from sld.errors import ConfigError

DEFAULT_PATH = "/etc/sld/sld.toml"


@dataclass(frozen=True)
class SourceConfig:
    spec: str = "auto"


@dataclass(frozen=True)
class TpmConfig:
    tcti: str = "device:/dev/tpmrm0"
    locality: int | None = None
    timeout: float = 5.0


@dataclass(frozen=True)
class VerifyConfig:
    mode: str = "auto"
    interval: float = 60.0
    lock: str = "/run/sld/extend.lock"
    policy: str = ""


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = 39230
    textfile: str = ""
    certfile: str = ""
    keyfile: str = ""
    basic_auth_user: str = ""
    basic_auth_password_sha256: str = ""


@dataclass(frozen=True)
class ControlConfig:
    socket: str = DEFAULT_SOCKET
    group: str = ""


@dataclass(frozen=True)
class QuarantineConfig:
    enabled: bool = False
    interfaces: tuple[str, ...] = ()
    allow: str = "tcp port 22"
    on: tuple[str, ...] = ("failed",)
    dry_run: bool = False


@dataclass(frozen=True)
class LogConfig:
    debug: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    tpm: TpmConfig = field(default_factory=TpmConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    quarantine: QuarantineConfig = field(default_factory=QuarantineConfig)
    log: LogConfig = field(default_factory=LogConfig)
    path: str = ""


CHOICES: dict[str, tuple[str, ...]] = {
    "verify.mode": ("auto", "validate", "perform"),
    "quarantine.on": ("failed", "not-launched", "degraded"),
    "log.debug": ("sources", "tpm", "replay", "metrics", "net", "control"),
}
RANGES: dict[str, tuple[float, float]] = {"verify.interval": (1, 86400), "metrics.port": (1, 65535),
                                          "tpm.locality": (0, 4), "tpm.timeout": (0.1, 600)}


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the dataclass field type; tuples come from TOML arrays."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _coerce(value, next(a for a in typing.get_args(hint) if a is not type(None)), key)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"expected an array, got {type(value).__name__}", key=key)
        return tuple(_coerce(v, typing.get_args(hint)[0], key) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"expected {hint.__name__}, got {type(value).__name__} {value!r}", key=key)
    return value


def _validate(key: str, value: Any) -> None:
    if key == "metrics.basic_auth_password_sha256" and value and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise ConfigError("expected the password's SHA-256 as 64 hex digits", key=key)
    allowed = CHOICES.get(key)
    for item in value if isinstance(value, tuple) else (value,):
        if allowed and item not in allowed:
            raise ConfigError(f"{item!r} is not one of {', '.join(allowed)}", key=key)
    if key in RANGES and value is not None and not RANGES[key][0] <= value <= RANGES[key][1]:
        raise ConfigError(f"{value} is outside {RANGES[key][0]:g}..{RANGES[key][1]:g}", key=key)


def from_dict(data: dict[str, Any], path: str = "") -> Config:
    sections: dict[str, Any] = {}
    hints = typing.get_type_hints(Config)
    for name, table in data.items():
        if name not in hints or name == "path":
            raise ConfigError(f"unknown section [{name}]", key=name, file=path)
        if not isinstance(table, dict):
            raise ConfigError("expected a table", key=name, file=path)
        cls = hints[name]
        fields = typing.get_type_hints(cls)
        values = {}
        for key, value in table.items():
            full = f"{name}.{key}"
            if key not in fields:
                raise ConfigError(f"unknown key (known: {', '.join(fields)})", key=full, file=path)
            try:
                values[key] = _coerce(value, fields[key], full)
                _validate(full, values[key])
            except ConfigError as err:
                raise ConfigError(str(err).split(": ", 1)[-1], key=full, file=path) from None
        sections[name] = cls(**values)
    return Config(**sections, path=path)


def load(path: str | None = None) -> Config:
    """The config at ``path`` (default /etc/sld/sld.toml; a missing default file means all defaults)."""
    target = Path(path or DEFAULT_PATH)
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        if path is None:
            return Config(path="")
        raise ConfigError("no such file", file=str(target)) from None
    except OSError as err:
        raise ConfigError(err.strerror or str(err), file=str(target)) from None
    return loads(raw, str(target))


def loads(raw: bytes, path: str = "") -> Config:
    """Parse config bytes: not UTF-8 or not TOML is a ConfigError like any bad key."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text (byte {err.start})", file=path) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML: {err}", file=path) from None
    return from_dict(data, path)


def replace(config: Config, **sections: Any) -> Config:
    """A copy with whole sections replaced (command-line overrides)."""
    return dataclasses.replace(config, **sections)
