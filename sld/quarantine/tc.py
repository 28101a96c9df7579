"""Attach, list and lift sld's quarantine: classic-BPF cls_bpf filters in direct-action mode on
clsact ingress and egress, through pyroute2 (netlink). The kernel holds the filters, so a stopped or
crashed daemon leaves the quarantine in place.

sld's filters sit at preference 1, the first a clsact hook consults (0 asks the kernel to choose, so 1
is the highest priority tc lets anyone set). A direct-action verdict ends classification, so only a
filter that runs before sld's can let traffic past the quarantine: one at the same preference,
which the kernel allows only for another cls_bpf filter (added later, it runs first). Listings
report every filter so such a filter is found (:func:`overtaking`).

pyroute2 0.9.7 declares TCA_BPF_OPS as a u32 and has no keyword for classic BPF ops; the one place
that extends its message declaration is :func:`_teach_pyroute2_classic_bpf`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import IPRoute, NetlinkError
from pyroute2.netlink.rtnl.tcmsg import sched_bpf

from sld.errors import ConfigError, SldError
from sld.quarantine.pcap import Insn

INGRESS = 0xFFFFFFF2
EGRESS = 0xFFFFFFF3
PARENTS = {"ingress": INGRESS, "egress": EGRESS}
ETH_P_ALL = 0x0003
PRIO = 1  # sld's priority (tc "pref") and handle: how its filters are told apart from anyone else's
HANDLE = 0x51D
NAME = "sld_quarantine"  # for listings; the kernel keeps no name for classic-BPF filters
ENOENT, EEXIST = 2, 17


def _teach_pyroute2_classic_bpf() -> None:
    """TCA_BPF_OPS is a byte array of sock_filter records and TCA_BPF_OPS_LEN a u16 (linux pkt_cls.h)."""
    if getattr(sched_bpf, "_sld_classic_bpf", False):
        return
    sched_bpf.options.nla_map = tuple(
        ("TCA_BPF_OPS", "cdata") if n == "TCA_BPF_OPS" else ("TCA_BPF_OPS_LEN", "uint16") if n == "TCA_BPF_OPS_LEN"
        else (n, t) for n, t in sched_bpf.options.nla_map)
    original = sched_bpf.get_parameters

    def get_parameters(kwarg: dict[str, Any]) -> dict[str, Any]:
        ops = kwarg.pop("bpf_ops", None)
        params = original(kwarg)
        if ops is not None:
            params["attrs"] += [["TCA_BPF_OPS_LEN", len(ops)], ["TCA_BPF_OPS", packed(ops)]]
        return params

    sched_bpf.get_parameters = get_parameters
    sched_bpf._sld_classic_bpf = True


def packed(program: list[Insn]) -> bytes:
    """struct sock_filter records (linux/filter.h), as TCA_BPF_OPS carries them."""
    return b"".join(struct.pack("<HBBI", *op) for op in program)


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
        return NAME if self.ours else ""

    def runs(self, program: list[Insn]) -> bool:
        """Whether this filter holds exactly ``program`` (a reload may have changed the allow list)."""
        return self._program == packed(program)

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
    _teach_pyroute2_classic_bpf()
    with _ipr(netns) as ipr:
        index = _index(ipr, ifname)
        try:
            ipr.tc("replace", "clsact", index)
            for parent in PARENTS.values():
                ipr.tc("replace-filter", "bpf", index, HANDLE, parent=parent, prio=PRIO, protocol=ETH_P_ALL,
                       bpf_ops=program, direct_action=True)
        except NetlinkError as err:
            raise QuarantineError(f"{ifname}: netlink refused the quarantine filter: {err}") from None


def lift(ifname: str, netns: str | None = None) -> int:
    """Remove sld's filters (and only them); returns how many were removed. Missing is fine."""
    removed = 0
    with _ipr(netns) as ipr:
        index = _index(ipr, ifname)
        for parent in PARENTS.values():
            try:
                ipr.tc("del-filter", "bpf", index, HANDLE, parent=parent, prio=PRIO, protocol=ETH_P_ALL)
                removed += 1
            except NetlinkError as err:
                if err.code not in (ENOENT, 22):  # no filter, or no clsact qdisc at all
                    raise QuarantineError(f"{ifname}: cannot lift the quarantine: {err}") from None
    return removed


def filters(ifname: str, netns: str | None = None) -> list[Filter]:
    """Every filter on ``ifname``'s clsact ingress and egress, as the kernel reports them."""
    _teach_pyroute2_classic_bpf()
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
                ops, program = 0, b""
                if kind == "bpf":
                    ops, program = opts.get_attr("TCA_BPF_OPS_LEN") or 0, opts.get_attr("TCA_BPF_OPS") or b""
                out.append(Filter(ifname, direction, f["info"] >> 16, f["handle"], kind, ops, bytes(program)))
    return out


def status(ifname: str, netns: str | None = None) -> list[Filter]:
    """sld's filters on ``ifname``."""
    return [f for f in filters(ifname, netns) if f.ours]


def overtaking(listed: list[Filter]) -> list[Filter]:
    """Foreign filters that run before or beside sld's and so may accept what the quarantine drops."""
    return [f for f in listed if not f.ours and f.prio <= PRIO]
