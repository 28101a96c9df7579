"""A policy from a known-good launch: every measured event of the DRTM log becomes a named part (pure).

Which part an event is comes from its type (the SINIT's measurements, SDG App. E Table E-5/E-6) or,
for the Secure Launch stub's 0x502 events, from its text (GRUB's default SLRT policy, spec §6), so
the same launch on another host yields the same part names, and only the ``host`` parts differ.
:func:`render` writes the policy as TOML with a comment per part saying what it measures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from sld.appraisal.model import Group, Part, Policy, SinitPolicy
from sld.errors import FormatError
from sld.formats.acm import Acm
from sld.formats.eventlog import Event, EventLog
from sld.formats.names import (
    EVTYPE_CAP_VALUE,
    EVTYPE_HASH_START,
    EVTYPE_LCP_CONTROL_HASH,
    EVTYPE_MLE_HASH,
    EVTYPE_STM_HASH,
    SLAUNCH,
    event_type_name,
)
from sld.replay import capped, extends

# type -> (group, part name, what it measures)  [SDG App. E; spec §4.4]
TYPE_PARTS: dict[int, tuple[Group, str, str]] = {
    EVTYPE_HASH_START: (Group.PLATFORM, "sinit", "the SINIT ACM: HASH_START is the DRTM's first measurement, of "
                        "the SINIT's hash and the SENTER EDX (its identity; SDG App. E)"),
    0x40A: (Group.PLATFORM, "bios-acm", "the BIOS ACM's registers (BIOSAC_REG_DATA: BIOS ACM ID, flags)"),
    0x40B: (Group.PLATFORM, "cpu-scrtm", "the CPU S-CRTM status (CPU_SCRTM_STAT: which CRTM started the platform)"),
    EVTYPE_LCP_CONTROL_HASH: (Group.PLATFORM, "lcp-control", "the launch control policy's control value "
                              "(LCP_CONTROL_HASH; the hash of a zero u32 means no LCP: SINIT launches any MLE)"),
    0x40D: (Group.PLATFORM, "lcp-elements", "the LCP policy elements (ELEMENTS_HASH)"),
    EVTYPE_STM_HASH: (Group.PLATFORM, "stm", "the SMI transfer monitor (STM_HASH; the hash of a zero byte means "
                      "no STM: SMM stays in the TCB)"),
    0x40F: (Group.PLATFORM, "os-sinit-caps", "the OsSinitData capabilities the loader asked for "
            "(OSSINITDATA_CAP_HASH; SDG C.4)"),
    0x410: (Group.PLATFORM, "sinit-pubkey", "the key that signed the SINIT (SINIT_PUBKEY_HASH)"),
    0x411: (Group.PLATFORM, "lcp", "the launch control policy (LCP_HASH)"),
    0x412: (Group.PLATFORM, "lcp-details", "the launch control policy details (LCP_DETAILS_HASH)"),
    0x413: (Group.PLATFORM, "lcp-authorities", "the launch control policy authorities (LCP_AUTHORITIES_HASH)"),
    0x414: (Group.PLATFORM, "nv-info", "the TPM NV indices the SINIT read (NV_INFO_HASH)"),
    EVTYPE_CAP_VALUE: (Group.PLATFORM, "cap", "a cap (CAP_VALUE): the PCR was closed against further use"),
    EVTYPE_MLE_HASH: (Group.OS, "mle", "the MLE: the kernel image SINIT measured before jumping to it (MLE_HASH)"),
}
# Secure Launch event text (prefix) -> (group, part name, what it measures)  [spec §6, GRUB slrt.c]
TEXT_PARTS: tuple[tuple[str, Group, str, str], ...] = (
    ("Measured SLR Table", Group.OS, "slr-table", "the Secure Launch Resource Table (INTEL_INFO copy)"),
    ("Measured boot parameters", Group.OS, "boot-params", "the kernel's boot_params (zero page)"),
    ("Measured Kernel setup_data", Group.OS, "setup-data", "the kernel's setup_data list"),
    ("Measured Kernel initrd", Group.OS, "initrd", "the initial ramdisk"),
    ("Measured TXT OS-MLE data", Group.OS, "os-mle-data", "the TXT OsMleData table"),
    ("Measured Kernel command line", Group.HOST, "cmdline", "the kernel command line (per host)"),
    ("Measured EFI memory map", Group.HOST, "efi-memmap", "the UEFI memory map (per host: it follows the RAM)"),
)


def event_text(event: Event) -> str | None:
    """A Secure Launch event's text (evt_info, no NUL; spec §6); None for every other type."""
    if event.type != SLAUNCH:
        return None
    return bytes(event.data).split(b"\0", 1)[0].decode("ascii", "replace")


def describe(etype: int, text: str | None) -> tuple[Group, str, str]:
    """Group, base name and meaning of an event, from its type or its Secure Launch text."""
    if text is not None:
        for prefix, group, name, doc in TEXT_PARTS:
            if text.startswith(prefix):
                return group, name, doc
        slug = re.sub(r"[^a-z0-9]+", "-", text.lower().removeprefix("measured ")).strip("-") or "secure-launch"
        return Group.OS, slug, f"a Secure Launch measurement: {text}"
    if etype in TYPE_PARTS:
        return TYPE_PARTS[etype]
    return Group.PLATFORM, f"event-0x{etype:x}", f"an event of type {event_type_name(etype)}"


def _unique(base: str, pcr: int, taken: set[str]) -> str:
    """``base``; ``base-pcrN`` when the same kind of event is in another PCR; ``base-2``... after that."""
    for name in (base, f"{base}-pcr{pcr}"):
        if name not in taken:
            return name
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def parts_from_log(log: EventLog) -> tuple[Part, ...]:
    """Every extending event of the DRTM PCRs, in log order, as a part allowing exactly its digests.

    A capped digest (a bank the code could not hash) approves nothing, so that bank is left out of
    the part; an event capped in every bank cannot be approved at all (FormatError).
    """
    parts: list[Part] = []
    taken: set[str] = set()
    last: dict[int, str] = {}  # PCR -> the part measured last in it
    for ev in log.events:
        if not extends(ev) or not 17 <= ev.pcr <= 22:
            continue
        text = event_text(ev)
        group, base, _ = describe(ev.type, text)
        name = _unique(base, ev.pcr, taken)
        taken.add(name)
        after = last.get(ev.pcr) if group == Group.HOST else None
        digests = {b: (bytes(d),) for b, d in ev.digests.items() if not capped(bytes(d))}
        if not digests:
            raise FormatError("DRTM event log", f"event {ev.index} ({ev.type_name}) is capped in every bank: "
                              "it measured nothing a policy could approve", offset=ev.offset)
        parts.append(Part(name, group, ev.pcr, ev.type, digests, text, after))
        last[ev.pcr] = name
    return tuple(parts)


def create(log: EventLog, acm: Acm | None) -> Policy:
    """The policy a known-good launch implies; without an ACM header it rests on HASH_START alone."""
    sinit = SinitPolicy(True, acm.txt_svn, acm.se_svn, acm.date) if acm is not None else SinitPolicy(False)
    return Policy(parts_from_log(log), sinit)


# ---- TOML ---------------------------------------------------------------------------------------

HEADER = """\
# sld appraisal policy: what a Secure Launch must measure, part by part (see sld(8), POLICY).
# Parts are listed in measurement order; within a PCR the log must hold them in this order, each
# once, with a digest from its list in every bank listed. Add a value to a list (or use
# `sld policy merge`) to allow an update; the host-unique parts live in per-host drop-ins.
"""
GROUP_DOC = {
    Group.PLATFORM: "platform: the SINIT ACM and what it measured about the platform (SDG App. E)",
    Group.OS: "OS: the MLE (kernel) and what the Secure Launch stub measured (SLRT policy entries)",
    Group.HOST: "host-unique: what differs between hosts running the same platform and OS",
}


def _digest_lines(part: Part) -> list[str]:
    return [f"{bank} = [{', '.join(json.dumps(d.hex()) for d in values)}]" for bank, values in part.digests.items()]


def _part_toml(part: Part, note: str | None) -> str:
    _, _, doc = describe(part.type, part.text)
    lines = [f"# {part.name}: {doc}", *([f"# ({note})"] if note else []), "[[part]]", f"name = {json.dumps(part.name)}",
             f"group = {json.dumps(str(part.group))}", f"pcr = {part.pcr}",
             f"type = {json.dumps(event_type_name(part.type).removeprefix('EVTYPE_'))}"
             if not event_type_name(part.type).startswith("0x") else f"type = 0x{part.type:x}"]
    for key, value in (("text", part.text), ("after", part.after)):
        if value is not None:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines + _digest_lines(part)) + "\n"


def _sinit_toml(sinit: SinitPolicy) -> str:
    if not sinit.header:
        return ("# The SINIT ACM: no ACM header was readable at SINIT.BASE (securityfs exports none, or the memory\n"
                "# held none), so the SINIT is identified by the HASH_START digest of part \"sinit\" alone.\n"
                "[sinit]\nheader = false\n")
    date = f"{sinit.date:08x}"
    return ("# The SINIT ACM header at SINIT.BASE (SDG A.1): a launch needs at least these security version\n"
            "# numbers; a SINIT older than the one a host last launched is a downgrade (its state directory).\n"
            f"[sinit]\nheader = true\ntxt_svn = {sinit.txt_svn}\nse_svn = {sinit.se_svn}\n"
            f"date = 0x{sinit.date:08x}  # {date[:4]}-{date[4:6]}-{date[6:]}\n")


def render(policy: Policy, groups: Iterable[Group] = tuple(Group), *, head: bool = True,
           notes: Mapping[str, str] | None = None) -> str:
    """The TOML text of ``policy``'s parts in ``groups`` (and, with ``head``, [policy] and [sinit]);
    ``notes`` adds what the golden host showed about a part to its comment (e.g. the capabilities)."""
    out = [HEADER] if head else ["# sld appraisal policy drop-in: host-unique parts (see sld(8), POLICY).\n"]
    if head:
        out.append("[policy]\nversion = 1\nallow_extra = "
                   f"{str(policy.allow_extra).lower()}  # true: events no part names are tolerated\n")
        if policy.sinit is not None:
            out.append(_sinit_toml(policy.sinit))
    group = None
    for part in (p for p in policy.parts if p.group in tuple(groups)):  # measurement order, never regrouped
        if part.group != group:
            group = part.group
            out.append(f"# ---- {GROUP_DOC[group]}\n")
        out.append(_part_toml(part, (notes or {}).get(part.name)))
    return "\n".join(out)
