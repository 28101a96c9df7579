"""/etc/sld/sld.toml -> frozen dataclasses. Unknown keys, wrong types and bad values are errors that
name the file and the key (exit code 2), so a typo never silently becomes a default.

The dataclasses are the schema: each field's type and default is what ``conf/sld.toml`` documents;
choices come from the vocabulary (``sld.vocab``). After the keys, each section is checked as a whole
(``SECTION_CHECKS``: TLS needs both files, quarantine needs interfaces, ...) and against what this
file system holds where a key names a path, so a configuration that cannot work is refused at start
or reload (exit 2), never discovered later. What needs other stages (the policy parser, libpcap, the
TCTI loader, netlink) is checked by ``sld.service.preflight``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import field
from typing import Any

from sld.errors import ConfigError
from sld.paths import DEFAULT_CONFIG, DEFAULT_SOCKET, DEFAULT_TCTI
from sld.records import Record
from sld.vocab import DaemonState, LogCategory, Mode, Result, choices


class SourceConfig(Record):
    """``[source]``: where the TXT registers and heap are read from: ``auto``, the kernel's
    ``/dev/mem`` view of TXT public space, a captured image or the simulator (the grammar is
    ``sld.platform.source.parse_spec``; checked at start by ``sld.service.preflight``)."""

    spec: str = "auto"


class TpmConfig(Record):
    """``[tpm]``: the TPM to compare PCR17-22 with. ``tcti`` is a tpm2-tss TCTI string (``name[:conf]``,
    tpm2-tss ``tctildr``; the default is the kernel's resource manager ``/dev/tpmrm0``); ``locality``
    (0-4, TCG PC Client Platform TPM Profile, locality) is left to the TCTI when unset."""

    tcti: str = DEFAULT_TCTI
    locality: int | None = None
    timeout: float = 5.0


class VerifyConfig(Record):
    """``[verify]``: how often and against what the launch is verified. ``mode`` comes from
    ``sld.vocab.Mode``; ``interval`` and ``timeout`` are seconds; ``policy`` is an appraisal policy
    file (parsed at start by ``sld.service.preflight``); ``state_dir`` is the unit's
    ``StateDirectory=sld`` (systemd.exec(5)), where the SINIT this host last launched with is
    remembered (the downgrade check)."""

    mode: str = Mode.AUTO
    interval: float = 60.0
    timeout: float = 20.0
    policy: str = ""
    state_dir: str = "/var/lib/sld"


class MetricsConfig(Record):
    """``[metrics]``: the Prometheus listener (``sld.service.http``) and the node-exporter textfile.
    The TLS and user keys follow exporter-toolkit's web configuration (``tls_server_config``
    ``cert_file``/``key_file``/``client_ca_file`` with ``RequireAndVerifyClientCert``, and
    ``basic_auth_users`` as bcrypt hashes); ``allow`` is sld's own CIDR list, enforced in the process
    as a complement to the unit's ``IPAddressAllow=`` (systemd.resource-control(5))."""

    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = 39230
    textfile: str = ""
    certfile: str = ""
    keyfile: str = ""
    client_ca: str = ""
    basic_auth_users: dict[str, str] = field(default_factory=dict)
    allow: tuple[str, ...] = ()


class ControlConfig(Record):
    """``[control]``: the control socket, under the unit's ``RuntimeDirectory=sld`` (systemd.exec(5));
    ``group`` hands it to a group, which chown(2) allows only with CAP_CHOWN or as a member."""

    socket: str = DEFAULT_SOCKET
    group: str = ""


class QuarantineConfig(Record):
    """``[quarantine]``: cls_bpf filters on the listed interfaces (``sld.quarantine``; tc-bpf(8)) that
    drop everything but ARP and ``allow`` (a pcap-filter(7) expression) while a verdict in ``on``
    holds; ``dry_run`` journals what would be done and touches no filter."""

    enabled: bool = False
    interfaces: tuple[str, ...] = ()
    allow: str = "tcp port 22"
    on: tuple[str, ...] = (Result.FAILED,)
    dry_run: bool = False


class LogConfig(Record):
    """``[log]``: debug categories (``sld.vocab.LogCategory``) journaled at debug level."""

    debug: tuple[str, ...] = ()


class AttestConfig(Record):
    """``[attest]``: the attestation key's persistent handle, in the TCG handle registry's persistent
    range (TCG Registry of Reserved TPM 2.0 Handles and Localities, 0x81xxxxxx)."""

    ak_handle: int = 0x81010002  # where `sld ak create` persists the AK (TCG handle registry: an AK)


class Config(Record):
    """The whole ``sld.toml``: one frozen dataclass per section; ``path`` is the file it was read from
    (empty for the built-in defaults)."""

    source: SourceConfig = field(default_factory=SourceConfig)
    tpm: TpmConfig = field(default_factory=TpmConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    quarantine: QuarantineConfig = field(default_factory=QuarantineConfig)
    log: LogConfig = field(default_factory=LogConfig)
    attest: AttestConfig = field(default_factory=AttestConfig)
    path: str = ""


CHOICES: dict[str, tuple[str, ...]] = {
    "verify.mode": choices(Mode),
    "quarantine.on": (Result.FAILED, Result.NOT_LAUNCHED, DaemonState.DEGRADED),
    "log.debug": choices(LogCategory),
}
BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
MAKE_BCRYPT = ("make one with `htpasswd -nBC 10 USER` (Debian apache2-utils) or python3 -c 'import crypt, "
               "getpass; print(crypt.crypt(getpass.getpass(), crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)))'")
RETIRED = dict.fromkeys(
    ("metrics.basic_auth_user", "metrics.basic_auth_password_sha256"),
    "an unsalted SHA-256 password is no longer accepted: list users with bcrypt hashes in "
    f'[metrics.basic_auth_users] (prom = "$2y$10$..."); {MAKE_BCRYPT}')
RANGES: dict[str, tuple[float, float]] = {"verify.interval": (1, 86400), "verify.timeout": (1, 600),
                                          "metrics.port": (1, 65535), "tpm.locality": (0, 4),
                                          "tpm.timeout": (0.1, 600),
                                          "attest.ak_handle": (0x81010000, 0x817FFFFF)}


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the dataclass field type; tuples come from TOML arrays."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _coerce(value, next(a for a in typing.get_args(hint) if a is not type(None)), key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a table, got {type(value).__name__}", key=key)
        return {_coerce(k, str, key): _coerce(v, typing.get_args(hint)[1], f"{key}.{k}") for k, v in value.items()}
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
    if key == "metrics.basic_auth_users":
        for user, hashed in value.items():
            if not BCRYPT.fullmatch(hashed):
                raise ConfigError(f"user {user!r}: expected a bcrypt hash ($2y$10$...); {MAKE_BCRYPT}", key=key)
    if key == "metrics.allow":
        import ipaddress  # here, like grp and tomllib: a cold `sld verify` with no file imports none of them

        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ConfigError(f"{network!r} is not an address or CIDR network", key=key) from None
    allowed = CHOICES.get(key)
    for item in value if isinstance(value, tuple) else (value,):
        if allowed and item not in allowed:
            raise ConfigError(f"{item!r} is not one of {', '.join(allowed)}", key=key)
    if key in RANGES and value is not None and not RANGES[key][0] <= value <= RANGES[key][1]:
        raise ConfigError(f"{value} is outside {RANGES[key][0]:g}..{RANGES[key][1]:g}", key=key)


def _check_verify(v: VerifyConfig) -> None:
    if v.policy and not os.path.isfile(v.policy):
        raise ConfigError(f"{v.policy}: no such file", key="verify.policy")


def _check_metrics(m: MetricsConfig) -> None:
    if bool(m.certfile) != bool(m.keyfile):
        given, missing = ("certfile", "keyfile") if m.certfile else ("keyfile", "certfile")
        raise ConfigError(f"{given} is set without {missing}: TLS needs both (plain HTTP is never served in "
                          "place of a half-configured TLS)", key=f"metrics.{missing}")
    if m.client_ca and not m.certfile:
        raise ConfigError("client certificates need TLS: set certfile and keyfile", key="metrics.client_ca")
    if m.textfile and not os.path.isdir(os.path.dirname(m.textfile) or "."):
        raise ConfigError(f"directory {os.path.dirname(m.textfile)} does not exist", key="metrics.textfile")


def _check_control(c: ControlConfig) -> None:
    if c.group:
        import grp

        try:
            grp.getgrnam(c.group)
        except KeyError:
            raise ConfigError(f"no group {c.group!r} on this system", key="control.group") from None


def _check_quarantine(q: QuarantineConfig) -> None:
    if q.enabled and not q.interfaces:
        raise ConfigError("enabled with no interfaces would block nothing: list them, or set enabled = false",
                          key="quarantine.interfaces")


SECTION_CHECKS: dict[str, Any] = {"verify": _check_verify, "metrics": _check_metrics, "control": _check_control,
                                  "quarantine": _check_quarantine}


def from_dict(data: dict[str, Any], path: str = "") -> Config:
    """The configuration a parsed TOML document describes: every section and key checked against the
    dataclasses, then each section as a whole (``SECTION_CHECKS``); a ConfigError names ``path`` and
    the first key that is wrong."""
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
            if full in RETIRED:
                raise ConfigError(RETIRED[full], key=full, file=path)
            if key not in fields:
                raise ConfigError(f"unknown key (known: {', '.join(fields)})", key=full, file=path)
            try:
                values[key] = _coerce(value, fields[key], full)
                _validate(full, values[key])
            except ConfigError as err:
                raise ConfigError(str(err).split(": ", 1)[-1], key=full, file=path) from None
        sections[name] = cls(**values)
    config = Config(**sections, path=path)
    for name, check in SECTION_CHECKS.items():
        try:
            check(getattr(config, name))
        except ConfigError as err:
            raise ConfigError(str(err).split(": ", 1)[-1], key=err.key, file=path) from None
    return config


def load(path: str | None = None) -> Config:
    """The config at ``path`` (default /etc/sld/sld.toml; a missing default file means all defaults)."""
    target = path or DEFAULT_CONFIG
    try:
        with open(target, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if path is None:
            return Config(path="")
        raise ConfigError("no such file", file=target) from None
    except OSError as err:
        raise ConfigError(err.strerror or str(err), file=target) from None
    return loads(raw, target)


def loads(raw: bytes, path: str = "") -> Config:
    """Parse config bytes: not UTF-8 or not TOML is a ConfigError like any bad key."""
    import tomllib

    try:
        return from_dict(tomllib.loads(raw.decode("utf-8")), path)
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text (byte {err.start})", file=path) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML: {err}", file=path) from None
    except RecursionError:  # tomllib recurses once per nesting level of arrays and inline tables
        raise ConfigError("nested too deeply to be a configuration", file=path) from None


def replace(config: Config, **sections: Any) -> Config:
    """A copy with whole sections replaced (command-line overrides)."""
    return dataclasses.replace(config, **sections)
