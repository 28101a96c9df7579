"""What an appraisal policy says must have launched, and how it reads from TOML (pure: no I/O).

A policy lists the *parts* of a launch in the order they are measured, grouped like Intel SecL-DC's
flavors: ``platform`` (the SINIT ACM and what it measures about the platform: BIOS ACM, S-CRTM
status, LCP, STM, OsSinitData capabilities; SDG App. E, D/A mapping), ``os`` (the MLE and what the
Secure Launch stub measures: initrd, boot parameters, setup data, SLR table; Secure Launch v16
"PCR Usage") and ``host`` (what differs per host, the kernel command line first, kept in a per-host
drop-in so one policy serves a fleet). Each part names its PCR, event type, the Secure Launch event
text where the log has one, and the digests it may have per bank; a part lists several when an
update is rolling out. ``[sinit]`` holds the minimum SVNs read from the ACM header at SINIT.BASE.

The older form, ``[pcrs.BANK]`` golden values and ``[[events]]`` required digests, still loads into
the same :class:`Policy` (``pcrs`` and ``events``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from enum import StrEnum
from typing import Any

from sld.errors import ConfigError
from sld.formats.names import DIGEST_SIZE, EVENT_TYPES, event_type_name
from sld.records import Record

# Type names as the one event-type table spells them, and without the EVTYPE_ prefix (``type = "MLE_HASH"``).
EVENT_TYPE_BY_NAME = {n: t for t, n in EVENT_TYPES.items()} | \
    {n.removeprefix("EVTYPE_"): t for t, n in EVENT_TYPES.items()}
MAX_DEPTH = 8  # a policy is at most part -> bank -> list; anything deeper is not a policy


class Group(StrEnum):
    """The three kinds of part, in the order ``sld policy create`` writes them."""

    PLATFORM = "platform"
    OS = "os"
    HOST = "host"


class Part(Record):
    """One measured event the launch must contain: ``digests[bank]`` lists the allowed values."""

    name: str
    group: Group
    pcr: int
    type: int
    digests: Mapping[str, tuple[bytes, ...]]
    text: str | None = None
    after: str | None = None  # the part measured just before it in its PCR (drop-in parts say where they go)

    @property
    def key(self) -> tuple[int, int, str | None]:
        """What identifies the event in a log, whatever its digest: PCR, type and Secure Launch text."""
        return (self.pcr, self.type, self.text)

    @property
    def label(self) -> str:
        """How a report names the event: its Secure Launch text, else its type name."""
        return self.text or event_type_name(self.type)


class SinitPolicy(Record):
    """The SINIT ACM header facts a launch must meet (SDG A.1); ``header`` False: none was readable."""

    header: bool
    txt_svn: int = 0
    se_svn: int = 0
    date: int = 0


class ExpectedEvent(Record):
    """The older ``[[events]]`` entry: some event (in ``pcr``, of ``type``) must carry these digests."""

    digests: dict[str, bytes]
    pcr: int | None = None
    type: int | None = None


class Policy(Record):
    """A whole policy: parts in measurement order, SINIT minimums, and the older form's rules."""

    parts: tuple[Part, ...] = ()
    sinit: SinitPolicy | None = None
    allow_extra: bool = False  # events no part names are tolerated
    pcrs: dict[str, dict[int, bytes]] = field(default_factory=dict)  # the older golden PCR values
    events: tuple[ExpectedEvent, ...] = ()  # the older required digests
    path: str = ""

    def part(self, name: str) -> Part | None:
        """The part called ``name``, if the policy has one."""
        return next((p for p in self.parts if p.name == name), None)


# ---- reading TOML ---------------------------------------------------------------------------------

SECTIONS = ("policy", "sinit", "part", "pcrs", "events")


class _Reader:
    """Validation with the file and the key in every error (exit 2, ConfigError)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(reason, key=key, file=self.path)

    def table(self, value: Any, key: str, known: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, not {_kind(value)}")
        unknown = [k for k in value if k not in known]
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}" if key else unknown[0], f"unknown key (known: {', '.join(known)})")
        return value

    def int_(self, value: Any, key: str, lo: int, hi: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise self.fail(key, f"must be an integer {lo}..{hi}, not {value!r}")
        return value

    def digest(self, value: Any, bank: str, key: str) -> bytes:
        if not isinstance(value, str):
            raise self.fail(key, f"a digest is a hex string, not {_kind(value)}")
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise self.fail(key, f"not hex: {value!r}") from None
        if len(raw) != DIGEST_SIZE[bank]:
            raise self.fail(key, f"a {bank} digest is {DIGEST_SIZE[bank]} bytes, this is {len(raw)}")
        return raw

    def event_type(self, value: Any, key: str) -> int:
        if isinstance(value, str):
            if value not in EVENT_TYPE_BY_NAME:
                raise self.fail(key, f"unknown event type name {value!r}")
            return EVENT_TYPE_BY_NAME[value]
        return self.int_(value, key, 0, 0xFFFFFFFF)

    def part(self, value: Any, key: str) -> Part:
        t = self.table(value, key, ("name", "group", "pcr", "type", "text", "after", *DIGEST_SIZE))
        for required in ("name", "group", "pcr", "type"):
            if required not in t:
                raise self.fail(f"{key}.{required}", "missing")
        if not isinstance(t["name"], str) or not t["name"]:
            raise self.fail(f"{key}.name", "must be a non-empty string")
        if t["group"] not in tuple(Group):
            raise self.fail(f"{key}.group", f"must be one of {', '.join(Group)}, not {t['group']!r}")
        text, after = t.get("text"), t.get("after")
        for name, value in (("text", text), ("after", after)):
            if value is not None and not isinstance(value, str):
                raise self.fail(f"{key}.{name}", f"must be a string, not {_kind(value)}")
        digests: dict[str, tuple[bytes, ...]] = {}
        for bank in DIGEST_SIZE:
            if bank not in t:
                continue
            values = t[bank]
            if not isinstance(values, list):  # the documented form is a list, even of one value
                raise self.fail(f"{key}.{bank}", f"must be an array of hex digests ({bank} = [\"...\"]), "
                                f"not {_kind(values)}")
            if not values:  # would allow nothing: every launch would fail this part
                raise self.fail(f"{key}.{bank}", "an empty list allows no digest; list one, or leave the bank out")
            digests[bank] = tuple(self.digest(v, bank, f"{key}.{bank}[{i}]") for i, v in enumerate(values))
        if not digests:
            raise self.fail(key, f"part {t['name']!r} lists no digest (one of {', '.join(DIGEST_SIZE)})")
        return Part(t["name"], Group(t["group"]), self.int_(t["pcr"], f"{key}.pcr", 0, 23),
                    self.event_type(t["type"], f"{key}.type"), digests, text, after)

    def sinit(self, value: Any) -> SinitPolicy:
        t = self.table(value, "sinit", ("header", "txt_svn", "se_svn", "date"))
        header = t.get("header", True)
        if not isinstance(header, bool):
            raise self.fail("sinit.header", f"must be true or false, not {header!r}")
        nums = {k: self.int_(t.get(k, 0), f"sinit.{k}", 0, 0xFFFF) for k in ("txt_svn", "se_svn")}
        return SinitPolicy(header, date=self.int_(t.get("date", 0), "sinit.date", 0, 0xFFFFFFFF), **nums)

    def pcrs(self, value: Any) -> dict[str, dict[int, bytes]]:
        out: dict[str, dict[int, bytes]] = {}
        for bank, values in self.table(value, "pcrs", tuple(DIGEST_SIZE)).items():
            for pcr, digest in self.table(values, f"pcrs.{bank}", tuple(str(p) for p in range(24))).items():
                out.setdefault(bank, {})[int(pcr)] = self.digest(digest, bank, f"pcrs.{bank}.{pcr}")
        return out

    def event(self, value: Any, key: str) -> ExpectedEvent:
        t = self.table(value, key, ("pcr", "type", *DIGEST_SIZE))
        digests = {b: self.digest(v, b, f"{key}.{b}") for b, v in t.items() if b in DIGEST_SIZE}
        if not digests:
            raise self.fail(key, f"needs a digest ({', '.join(DIGEST_SIZE)})")
        pcr = self.int_(t["pcr"], f"{key}.pcr", 0, 23) if "pcr" in t else None
        etype = self.event_type(t["type"], f"{key}.type") if "type" in t else None
        return ExpectedEvent(digests, pcr, etype)


def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a float"}.get(type(value), type(value).__name__)


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, never more than ``limit + 1`` (so a 2,000-deep array costs nothing to refuse)."""
    if limit < 0 or not isinstance(value, dict | list):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in children), default=0)


def from_toml(data: Mapping[str, Any], path: str) -> Policy:
    """A parsed TOML document -> Policy; every wrong type, key or value is a ConfigError naming it."""
    r = _Reader(path)
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise r.fail("", f"nested deeper than {MAX_DEPTH} levels: not a policy")
    r.table(data, "", SECTIONS)
    head = r.table(data.get("policy", {}), "policy", ("version", "allow_extra"))
    r.int_(head.get("version", 1), "policy.version", 1, 1)  # the one version this sld reads
    allow_extra = head.get("allow_extra", False)
    if not isinstance(allow_extra, bool):
        raise r.fail("policy.allow_extra", f"must be true or false, not {allow_extra!r}")
    for name in ("part", "events"):
        if not isinstance(data.get(name, []), list):
            raise r.fail(name, f"must be an array of tables ([[{name}]]), not {_kind(data[name])}")
    parts = tuple(r.part(v, f"part[{i}]") for i, v in enumerate(data.get("part", [])))
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise r.fail(f"part[{len(names) - 1 - names[::-1].index(dup)}].name", f"part {dup!r} is named twice")
    sinit = r.sinit(data["sinit"]) if "sinit" in data else None
    events = tuple(r.event(v, f"events[{i}]") for i, v in enumerate(data.get("events", [])))
    return Policy(parts, sinit, allow_extra, r.pcrs(data.get("pcrs", {})), events, path)
