"""Two policies -> one allowing what either allows: how an update rolls out, and how drop-ins join (pure).

A part in both keeps its place and gains the other's digests; a part only in the second goes right
after the part measured before it (its ``after``, else its predecessor in the same PCR of the second
policy), so measurement order within each PCR survives. The same name with a different PCR, type or
text is a conflict, not something to guess about, and so is an ``after`` naming no part of either
policy or a part of another PCR (each PCR is its own hash chain, TCG PC Client PFP §3.3.4): putting
such a part last would only show later, as out-of-order findings on every host. :func:`merge` takes
the looser posture (allow_extra, the lower SINIT minimums); :func:`loosened` says where that would
happen, so ``sld policy merge`` and the drop-in loader can refuse it instead.
"""

from __future__ import annotations

from dataclasses import replace

from sld.appraisal.model import Part, Policy, SinitPolicy
from sld.errors import ConfigError


def _union(a: Part, b: Part, where: str) -> Part:
    if a.key != b.key or a.group != b.group:
        raise ConfigError(f"part {a.name!r} is PCR{a.pcr} {a.label} ({a.group}) in one policy and PCR{b.pcr} "
                          f"{b.label} ({b.group}) in the other", key=f"part.{a.name}", file=where)
    digests = {bank: tuple(dict.fromkeys((*a.digests.get(bank, ()), *b.digests.get(bank, ()))))
               for bank in (*a.digests, *(k for k in b.digests if k not in a.digests))}
    return replace(a, digests=digests)


def loosened(a: Policy, b: Policy) -> list[tuple[str, str, str]]:
    """The posture settings :func:`merge` would take from ``b`` because ``b`` is looser than ``a``: (key,
    ``a``'s value, ``b``'s value). Digests widen by design; these do not: a tolerated unknown event or a
    lower SINIT minimum (SDG A.1 TxtSvn/SeSvn, the build date) would hold for every host of the merge."""
    out = []
    if b.allow_extra and not a.allow_extra:
        out.append(("policy.allow_extra", "false", "true"))
    if a.sinit is not None and b.sinit is not None:
        if a.sinit.header and not b.sinit.header:
            out.append(("sinit.header", "true", "false"))
        elif a.sinit.header:
            for key, form in (("txt_svn", "{}"), ("se_svn", "{}"), ("date", "0x{:08x}")):
                mine, theirs = getattr(a.sinit, key), getattr(b.sinit, key)
                if theirs < mine:
                    out.append((f"sinit.{key}", form.format(mine), form.format(theirs)))
    return out


def _sinit(a: SinitPolicy | None, b: SinitPolicy | None) -> SinitPolicy | None:
    """Both SINITs allowed: the lower minimums; a header only when both had one."""
    if a is None or b is None:
        return a or b
    if not (a.header and b.header):
        return SinitPolicy(False)
    return SinitPolicy(True, min(a.txt_svn, b.txt_svn), min(a.se_svn, b.se_svn), min(a.date, b.date))


def _anchor(parts: list[Part], index: dict[str, int], part: Part, key: str, where: str) -> None:
    """Refuse a part whose ``after`` is not a part measured in its own PCR (ConfigError naming it)."""
    if part.after is None:
        return
    if part.after not in index:
        raise ConfigError(f"part {part.name!r} is after {part.after!r}, but no part of the policy is called that",
                          key=key, file=where)
    anchor = parts[index[part.after]]
    if anchor.pcr != part.pcr:
        raise ConfigError(f"part {part.name!r} (PCR{part.pcr}) is after {part.after!r}, which is measured in "
                          f"PCR{anchor.pcr}: order is kept within a PCR only", key=key, file=where)


def anchors(policy: Policy) -> None:
    """Every ``after`` in one complete policy names a part of it in the same PCR (else ConfigError)."""
    parts = list(policy.parts)
    index = {p.name: i for i, p in enumerate(parts)}
    for i, part in enumerate(parts):
        _anchor(parts, index, part, f"part[{i}].after", policy.path)


def merge(a: Policy, b: Policy) -> Policy:
    """``a`` widened by ``b`` (``b.path`` names the file in a conflict)."""
    parts = list(a.parts)
    index = {p.name: i for i, p in enumerate(parts)}
    previous: dict[int, str] = {}  # PCR -> b's part last placed in it
    for i, part in enumerate(b.parts):
        if part.name in index:
            parts[index[part.name]] = _union(parts[index[part.name]], part, b.path)
        else:
            _anchor(parts, index, part, f"part[{i}].after", b.path)
            anchor = part.after or previous.get(part.pcr)
            at = index[anchor] + 1 if anchor in index else len(parts)
            parts.insert(at, part)
            index = {p.name: i for i, p in enumerate(parts)}
        previous[part.pcr] = part.name
    pcrs = {bank: dict(values) for bank, values in a.pcrs.items()}
    for bank, values in b.pcrs.items():
        for pcr, value in values.items():
            if pcrs.get(bank, {}).get(pcr, value) != value:
                raise ConfigError(f"golden PCR{pcr} {bank} differs between the policies", key=f"pcrs.{bank}.{pcr}",
                                  file=b.path)
            pcrs.setdefault(bank, {})[pcr] = value
    events = a.events + tuple(e for e in b.events if e not in a.events)
    return Policy(tuple(parts), _sinit(a.sinit, b.sinit), a.allow_extra or b.allow_extra, pcrs, events, a.path)
