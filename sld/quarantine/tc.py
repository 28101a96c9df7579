"""Attach, list and lift sld's quarantine: classic-BPF cls_bpf filters in direct-action mode on
clsact ingress and egress (tc-bpf(8); linux ``net/sched/cls_bpf.c``, ``sch_ingress.c``), through
pyroute2's netlink socket. The kernel holds the filters, so a stopped or crashed daemon leaves the
quarantine in place.

What tc allows, and so where sld's filters sit (linux ``net/sched/cls_api.c`` ``tc_new_tfilter`` and
``tcf_chain_tp_find``, ``cls_bpf.c`` ``cls_bpf_change``): a clsact hook's chain 0 runs in ascending
preference, and 1 is the lowest preference anyone can set (0 asks the kernel to choose: 49152, or one
less than the first filter at 32768 or above). Filters at one preference must be of one kind and
protocol, and cls_bpf runs the newest filter of a preference first. So sld's filter (protocol all)
goes to preference 1, first there; a cls_bpf filter of protocol all added later at 1 runs before it,
and one of another kind or protocol already at 1 keeps sld out of 1 altogether (the kernel refuses
the mix), in which case sld takes the lowest preference it can share (:func:`target`). tc offers no
way to stop either (any process with CAP_NET_ADMIN in the namespace may also delete sld's filters),
so sld reconciles instead: :func:`apply` adds its filter under its other handle where it runs first,
and only then deletes the one behind (the hook is never without sld's filter). A dump lists a hook's
filters in the order they run, so :func:`overtaking` finds what runs before sld's.

pyroute2 has no keyword for classic-BPF ops: the filter messages are sld's own
(:mod:`sld.quarantine.cls_bpf`), sent and dumped on pyroute2's ``IPRoute`` socket.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import field

from pyroute2 import IPRoute, NetlinkError

from sld.errors import ConfigError, SldError
from sld.quarantine import cls_bpf
from sld.quarantine.pcap import Insn
from sld.records import Record

INGRESS = 0xFFFFFFF2
EGRESS = 0xFFFFFFF3
PARENTS = {"ingress": INGRESS, "egress": EGRESS}
ETH_P_ALL = 0x0003
PRIO = 1  # the preference (tc "pref") sld's filters take unless a filter they cannot share it with holds it
HANDLES = (0x51D, 0x51E)  # how sld's filters are told apart; two, so a new one goes in front before the old goes
NAME = "sld_quarantine"  # for listings; the kernel keeps no name for classic-BPF filters
ENOENT = 2


class Filter(Record):
    """One filter on a clsact hook as the kernel lists it: sld's own, or anyone else's."""

    ifname: str
    direction: str
    prio: int
    handle: int
    kind: str
    protocol: int  # ETH_P_* in host order (ETH_P_ALL for sld's)
    ops: int  # classic-BPF instructions (cls_bpf); 0 for other kinds
    _program: bytes = field(default=b"", repr=False)

    @property
    def ours(self) -> bool:
        """sld's filter: cls_bpf of protocol all under sld's handles (the kernel keeps no owner or name)."""
        return self.kind == "bpf" and self.protocol == ETH_P_ALL and self.handle in HANDLES

    @property
    def name(self) -> str:
        """``sld_quarantine`` for sld's filters (listings show it), empty for anyone else's."""
        return NAME if self.ours else ""

    def runs(self, program: list[Insn]) -> bool:
        """Whether this filter holds exactly ``program`` (a reload may have changed the allow list)."""
        return self._program == cls_bpf.packed(program)

    def __str__(self) -> str:
        return f"{self.kind} filter pref {self.prio} handle 0x{self.handle:x} on {self.ifname} {self.direction}"


class QuarantineError(SldError):
    """A netlink failure while applying, listing or lifting the quarantine."""


@contextmanager
def _ipr(netns: str | None) -> Iterator[IPRoute]:
    ipr = IPRoute(netns=netns) if netns else IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:  # a name in [quarantine] interfaces (or --interface) that this namespace lacks
        raise ConfigError(f"no interface {ifname!r} here", key="quarantine.interfaces")
    return int(found[0])


def apply(ifname: str, program: list[Insn], netns: str | None = None) -> None:
    """Install (or replace) sld's filter on both directions of ``ifname``, as early as tc allows:
    idempotent. A filter of sld's that already runs first at :func:`target` is replaced in place
    (cls_bpf keeps its position); otherwise one is added there under sld's free handle, which cls_bpf
    runs first, and then sld's others are deleted."""
    with _ipr(netns) as ipr:
        index = _index(ipr, ifname)
        try:
            ipr.tc("replace", "clsact", index)
            for direction, parent in PARENTS.items():
                listed = _hook(ipr, index, ifname, direction, parent)
                prio, mine, first = target(listed), [f for f in listed if f.ours], _leader(listed)
                if first is None and len(mine) == len(HANDLES):  # both behind a foreign one (a run cut mid-swap)
                    _delete(ipr, index, parent, mine.pop())
                handle = first.handle if first else next(h for h in HANDLES if h not in {f.handle for f in mine})
                cls_bpf.send(ipr, cls_bpf.message(index, handle, parent, prio, ETH_P_ALL, program))
                for f in mine:
                    if (f.prio, f.handle) != (prio, handle):
                        _delete(ipr, index, parent, f)
        except NetlinkError as err:
            raise QuarantineError(f"{ifname}: netlink refused the quarantine filter: {err}") from None


def _delete(ipr: IPRoute, index: int, parent: int, f: Filter) -> None:
    cls_bpf.send(ipr, cls_bpf.message(index, f.handle, parent, f.prio, ETH_P_ALL))


def lift(ifname: str, netns: str | None = None) -> int:
    """Remove sld's filters (and only them); returns how many were removed. Missing is fine."""
    removed = 0
    with _ipr(netns) as ipr:
        index = _index(ipr, ifname)
        for direction, parent in PARENTS.items():
            for f in _hook(ipr, index, ifname, direction, parent):
                if not f.ours:
                    continue
                try:
                    _delete(ipr, index, parent, f)
                    removed += 1
                except NetlinkError as err:
                    if err.code != ENOENT:  # gone meanwhile is fine
                        raise QuarantineError(f"{ifname}: cannot lift the quarantine: {err}") from None
    return removed


def filters(ifname: str, netns: str | None = None) -> list[Filter]:
    """Every filter on ``ifname``'s clsact ingress and egress, as the kernel reports them: per hook in
    the order they run."""
    with _ipr(netns) as ipr:
        index = _index(ipr, ifname)
        return [f for direction, parent in PARENTS.items() for f in _hook(ipr, index, ifname, direction, parent)]


def _hook(ipr: IPRoute, index: int, ifname: str, direction: str, parent: int) -> list[Filter]:
    """The filters of one clsact hook (chain 0), in the order the kernel runs them."""
    try:
        listed = ipr.get_filters(index=index, parent=parent)
    except NetlinkError as err:
        if err.code in (ENOENT, 22):  # no clsact qdisc: nothing on this hook
            return []
        raise QuarantineError(f"{ifname}: cannot list filters: {err}") from None
    out = []
    for f in listed:
        if f.get_attr("TCA_OPTIONS") is None:  # the per-priority header record a dump starts each chain with
            continue
        kind = f.get_attr("TCA_KIND") or "?"
        program = cls_bpf.ops(f) if kind == "bpf" else b""
        protocol = socket.ntohs(f["info"] & 0xFFFF)
        out.append(Filter(ifname, direction, f["info"] >> 16, f["handle"], kind, protocol, len(program) // 8, program))
    return out


def status(ifname: str, netns: str | None = None) -> list[Filter]:
    """sld's filters on ``ifname``."""
    return [f for f in filters(ifname, netns) if f.ours]


def _hooks(listed: list[Filter]) -> Iterator[list[Filter]]:
    """``listed`` (as :func:`filters` gives it) cut into its hooks, each in run order."""
    for hook in dict.fromkeys((f.ifname, f.direction) for f in listed):
        yield [f for f in listed if (f.ifname, f.direction) == hook]


def target(hook: list[Filter]) -> int:
    """The preference sld's filter takes on one hook: 1, or the lowest after those held by a filter of
    another kind or protocol (the kernel does not let sld's share them)."""
    held = {f.prio for f in hook if not f.ours and (f.kind, f.protocol) != ("bpf", ETH_P_ALL)}
    prio = PRIO
    while prio in held:
        prio += 1
    return prio


def placed(listed: list[Filter]) -> bool:
    """On every hook that has one, sld's filter runs first at :func:`target`: as early as tc allows, and
    where :func:`apply` would put it."""
    return all(_leader(hook) is not None for hook in _hooks(listed) if any(f.ours for f in hook))


def _leader(hook: list[Filter]) -> Filter | None:
    """sld's filter when it is the one that runs first at :func:`target` on ``hook`` (where :func:`apply`
    keeps it, replacing it in place), else None: a foreign filter or nothing runs first there."""
    prio = target(hook)
    first = next((f for f in hook if f.prio == prio), None)
    return first if first is not None and first.ours else None


def overtaking(listed: list[Filter]) -> list[Filter]:
    """Foreign filters that run before sld's on the same hook (``listed`` in run order, as :func:`filters`
    gives it), and so may accept what the quarantine drops; those behind sld's decide nothing it drops."""
    out: list[Filter] = []
    for hook in _hooks(listed):
        ours = next((i for i, f in enumerate(hook) if f.ours), None)
        out += hook[:ours] if ours is not None else []
    return out
