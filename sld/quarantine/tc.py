"""Attach, list and lift sld's quarantine: classic-BPF cls_bpf filters in direct-action mode on
clsact ingress and egress (tc-bpf(8); linux ``net/sched/cls_bpf.c``, ``sch_ingress.c``), through
pyroute2's netlink socket. The kernel holds the filters, so a stopped or crashed daemon leaves the
quarantine in place.

sld's filters sit at preference 1, the first a clsact hook consults: a chain is kept in ascending
preference order, and 0 asks the kernel to choose one (``tc_new_tfilter`` in linux
``net/sched/cls_api.c``), so 1 is the highest priority tc lets anyone set. A direct-action verdict
ends classification, so only a filter that runs before sld's can let traffic past the quarantine:
one at the same preference, which the kernel allows only for another cls_bpf filter (added later,
it runs first). Listings report every filter so such a filter is found (:func:`overtaking`).

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
PRIO = 1  # sld's priority (tc "pref") and handle: how its filters are told apart from anyone else's
HANDLE = 0x51D
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
        """sld's filter: cls_bpf at sld's preference and handle (the kernel keeps no owner or name)."""
        return self.kind == "bpf" and self.prio == PRIO and self.handle == HANDLE

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
    """Install (or replace) sld's filter on both directions of ``ifname``: idempotent."""
    with _ipr(netns) as ipr:
        index = _index(ipr, ifname)
        try:
            ipr.tc("replace", "clsact", index)
            for parent in PARENTS.values():
                cls_bpf.send(ipr, cls_bpf.message(index, HANDLE, parent, PRIO, ETH_P_ALL, program))
        except NetlinkError as err:
            raise QuarantineError(f"{ifname}: netlink refused the quarantine filter: {err}") from None


def lift(ifname: str, netns: str | None = None) -> int:
    """Remove sld's filters (and only them); returns how many were removed. Missing is fine."""
    removed = 0
    with _ipr(netns) as ipr:
        index = _index(ipr, ifname)
        for parent in PARENTS.values():
            try:
                cls_bpf.send(ipr, cls_bpf.message(index, HANDLE, parent, PRIO, ETH_P_ALL))
                removed += 1
            except NetlinkError as err:
                if err.code not in (ENOENT, 22):  # no filter, or no clsact qdisc at all
                    raise QuarantineError(f"{ifname}: cannot lift the quarantine: {err}") from None
    return removed


def filters(ifname: str, netns: str | None = None) -> list[Filter]:
    """Every filter on ``ifname``'s clsact ingress and egress, as the kernel reports them."""
    out = []
    with _ipr(netns) as ipr:
        index = _index(ipr, ifname)
        for direction, parent in PARENTS.items():
            try:
                listed = ipr.get_filters(index=index, parent=parent)
            except NetlinkError as err:
                if err.code in (ENOENT, 22):  # no clsact qdisc: nothing on this hook
                    continue
                raise QuarantineError(f"{ifname}: cannot list filters: {err}") from None
            for f in listed:
                opts = f.get_attr("TCA_OPTIONS")
                if opts is None:  # the per-priority header record a dump starts each filter chain with
                    continue
                kind = f.get_attr("TCA_KIND") or "?"
                program = cls_bpf.ops(f) if kind == "bpf" else b""
                out.append(Filter(ifname, direction, f["info"] >> 16, f["handle"], kind, len(program) // 8, program))
    return out


def status(ifname: str, netns: str | None = None) -> list[Filter]:
    """sld's filters on ``ifname``."""
    return [f for f in filters(ifname, netns) if f.ours]


def overtaking(listed: list[Filter]) -> list[Filter]:
    """Foreign filters that run before or beside sld's and so may accept what the quarantine drops."""
    return [f for f in listed if not f.ours and f.prio <= PRIO]
