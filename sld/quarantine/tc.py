"""Attach, list and lift sld's quarantine: classic-BPF cls_bpf filters in direct-action mode on
clsact ingress and egress (tc-bpf(8); linux ``net/sched/cls_bpf.c``, ``sch_ingress.c``), through
pyroute2's netlink socket. The kernel holds the filters, so a stopped or crashed daemon leaves the
quarantine in place.

What tc allows, and so where sld's filters sit (linux ``net/sched/cls_api.c`` ``tc_new_tfilter`` and
``tcf_chain_tp_find``, ``cls_bpf.c`` ``cls_bpf_change``): a clsact hook's chain 0 runs in ascending
preference, and 1 is the lowest preference anyone can set (0 asks the kernel to choose: 49152, or one
less than the first filter at 32768 or above). sld's filters sit at preference 1 (protocol all), so
no filter of another preference runs before them. Filters at the same preference must be of the same kind
and protocol, so the only filter that can share preference 1 is another cls_bpf filter of protocol
all (or 0); cls_bpf puts the newest filter of a preference first, so one added after sld's runs
before it and its verdict (direct action) ends classification. tc offers no way to stop that (any
process with CAP_NET_ADMIN in the namespace may also delete sld's filters), so sld takes the front
again: :func:`apply` adds its filter under its other handle, which cls_bpf puts first, and only then
deletes the one behind (the hook is never without sld's filter). A dump lists a hook's filters in the
order they run, so :func:`overtaking` finds what runs before sld's.

pyroute2 has no keyword for classic-BPF ops: the filter messages are sld's own
(:mod:`sld.quarantine.cls_bpf`), sent and dumped on pyroute2's ``IPRoute`` socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pyroute2 import IPRoute, NetlinkError

from sld.errors import ConfigError, SldError
from sld.quarantine import cls_bpf
from sld.quarantine.pcap import Insn

INGRESS = 0xFFFFFFF2
EGRESS = 0xFFFFFFF3
PARENTS = {"ingress": INGRESS, "egress": EGRESS}
ETH_P_ALL = 0x0003
PRIO = 1  # sld's priority (tc "pref") and handles: how its filters are told apart from anyone else's
HANDLES = (0x51D, 0x51E)  # two, so that a new filter can go in front before the old one is deleted
NAME = "sld_quarantine"  # for listings; the kernel keeps no name for classic-BPF filters
ENOENT = 2


@dataclass(frozen=True)
class Filter:
    """One filter on a clsact hook as the kernel lists it: sld's own, or anyone else's."""

    ifname: str
    direction: str
    prio: int
    handle: int
    kind: str
    ops: int  # classic-BPF instructions (cls_bpf); 0 for other kinds
    _program: bytes = field(default=b"", repr=False)

    @property
    def ours(self) -> bool:
        """sld's filter: cls_bpf at sld's preference and handles (the kernel keeps no owner or name)."""
        return self.kind == "bpf" and self.prio == PRIO and self.handle in HANDLES

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
    """Install (or replace) sld's filter on both directions of ``ifname``, first of all: idempotent.
    A filter of sld's that already runs first is replaced in place (cls_bpf keeps its position);
    otherwise one is added under sld's free handle, which cls_bpf runs first, and then the old one
    behind it is deleted."""
    with _ipr(netns) as ipr:
        index = _index(ipr, ifname)
        try:
            ipr.tc("replace", "clsact", index)
            for direction, parent in PARENTS.items():
                listed = _hook(ipr, index, ifname, direction, parent)
                mine = [f.handle for f in listed if f.ours]
                if listed and listed[0].ours:
                    front = listed[0].handle
                else:
                    if len(mine) == len(HANDLES):  # both behind a foreign filter (a run cut between add and del)
                        _delete(ipr, index, parent, mine.pop())
                    front = next(h for h in HANDLES if h not in mine)
                cls_bpf.send(ipr, cls_bpf.message(index, front, parent, PRIO, ETH_P_ALL, program))
                for handle in mine:
                    if handle != front:
                        _delete(ipr, index, parent, handle)
        except NetlinkError as err:
            raise QuarantineError(f"{ifname}: netlink refused the quarantine filter: {err}") from None


def _delete(ipr: IPRoute, index: int, parent: int, handle: int) -> None:
    cls_bpf.send(ipr, cls_bpf.message(index, handle, parent, PRIO, ETH_P_ALL))


def lift(ifname: str, netns: str | None = None) -> int:
    """Remove sld's filters (and only them); returns how many were removed. Missing is fine."""
    removed = 0
    with _ipr(netns) as ipr:
        index = _index(ipr, ifname)
        for parent in PARENTS.values():
            for handle in HANDLES:
                try:
                    _delete(ipr, index, parent, handle)
                    removed += 1
                except NetlinkError as err:
                    if err.code not in (ENOENT, 22):  # no filter, or no clsact qdisc at all
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
        out.append(Filter(ifname, direction, f["info"] >> 16, f["handle"], kind, len(program) // 8, program))
    return out


def status(ifname: str, netns: str | None = None) -> list[Filter]:
    """sld's filters on ``ifname``."""
    return [f for f in filters(ifname, netns) if f.ours]


def overtaking(listed: list[Filter]) -> list[Filter]:
    """Foreign filters that run before sld's on the same hook (``listed`` in run order, as :func:`filters`
    gives it), and so may accept what the quarantine drops; those behind sld's decide nothing it drops."""
    out: list[Filter] = []
    for hook in dict.fromkeys((f.ifname, f.direction) for f in listed):
        on_hook = [f for f in listed if (f.ifname, f.direction) == hook]
        ours = next((i for i, f in enumerate(on_hook) if f.ours), None)
        out += on_hook[:ours] if ours is not None else []
    return out
