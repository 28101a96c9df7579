"""The cls_bpf filter message for classic BPF, declared as linux ``include/uapi/linux/pkt_cls.h`` has it.

pyroute2 (0.7.2 in Debian 12, 0.9.x on PyPI) declares ``TCA_BPF_OPS`` as a u32 and has no keyword for
classic-BPF ops: its ``bpf`` tc kind only attaches eBPF programs by file descriptor. Here the
attribute table is declared again for sld's own message classes, the way pyroute2's tc kinds declare
theirs (``pyroute2/netlink/rtnl/tcmsg/sched_bpf.py``): :class:`tcmsg` is a subclass of pyroute2's
``tcmsg`` that reads a ``bpf`` filter's options with :class:`options`. Nothing of pyroute2's own is
changed: messages pyroute2 builds or parses elsewhere in the process keep pyroute2's declaration.

In the kernel (``net/sched/cls_bpf.c``, ``cls_bpf_prog_from_ops``) ``TCA_BPF_OPS_LEN`` is a u16 count
of instructions and ``TCA_BPF_OPS`` the array of ``struct sock_filter`` records (``linux/filter.h``);
``TCA_BPF_FLAGS`` bit 0 (``TCA_BPF_FLAG_ACT_DIRECT``) makes the program's return value the tc action.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, nla
from pyroute2.netlink.rtnl import RTM_DELTFILTER, RTM_NEWTFILTER
from pyroute2.netlink.rtnl.tcmsg import tcmsg as _pyroute2_tcmsg
from pyroute2.netlink.rtnl.tcmsg.act_police import nla_plus_police
from pyroute2.netlink.rtnl.tcmsg.sched_bpf import options as _pyroute2_bpf_options

from sld.quarantine.pcap import Insn

TCA_BPF_FLAG_ACT_DIRECT = 1
REPLACE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE  # tc filter replace
DELETE = NLM_F_REQUEST | NLM_F_ACK  # tc filter del


def packed(program: list[Insn]) -> bytes:
    """struct sock_filter records (``linux/filter.h``: u16 code, u8 jt, u8 jf, u32 k), as TCA_BPF_OPS carries them."""
    return b"".join(struct.pack("<HBBI", *op) for op in program)


class options(nla, nla_plus_police):  # type: ignore[misc]  # noqa: N801 - pyroute2: untyped, lower-case nla classes
    """TCA_OPTIONS of a ``bpf`` filter, in pkt_cls.h's order (the attribute type is the position)."""

    nla_map = (
        ("TCA_BPF_UNSPEC", "none"),
        ("TCA_BPF_ACT", "bpf_act"),
        ("TCA_BPF_POLICE", "police"),
        ("TCA_BPF_CLASSID", "uint32"),
        ("TCA_BPF_OPS_LEN", "uint16"),
        ("TCA_BPF_OPS", "cdata"),
        ("TCA_BPF_FD", "uint32"),
        ("TCA_BPF_NAME", "asciiz"),
        ("TCA_BPF_FLAGS", "uint32"),
    )
    bpf_act = _pyroute2_bpf_options.bpf_act  # actions are pyroute2's declaration, used as it is


class tcmsg(_pyroute2_tcmsg):  # type: ignore[misc]  # noqa: N801 - pyroute2 ships no type hints
    """pyroute2's tc message, except that a ``bpf`` filter's options are read with :class:`options`."""

    def get_plugin(self, plug: str, *argv: Any, **kwarg: Any) -> Any:
        """pyroute2 resolves TCA_OPTIONS per message through this method (by TCA_KIND)."""
        if plug == "options" and self.get_attr("TCA_KIND") == "bpf":
            return options
        return super().get_plugin(plug, *argv, **kwarg)


def message(index: int, handle: int, parent: int, prio: int, protocol: int, program: list[Insn] | None = None) -> tcmsg:
    """``tc filter replace`` of a classic-BPF filter in direct-action mode with ``program``, or ``tc
    filter del`` of the filter at that pref, protocol and handle without one. ``info`` packs the
    preference over the protocol in network order (``tc(8)`` ``pref`` and ``protocol``; linux
    ``net/sched/cls_api.c`` reads ``TC_H_MAJ(info) >> 16`` and ``TC_H_MIN(info)``)."""
    msg = tcmsg()
    msg["header"]["type"] = RTM_NEWTFILTER if program is not None else RTM_DELTFILTER
    msg["header"]["flags"] = REPLACE if program is not None else DELETE
    msg["family"] = socket.AF_UNSPEC
    msg["index"] = index
    msg["handle"] = handle
    msg["parent"] = parent
    msg["info"] = (prio << 16) | socket.htons(protocol)
    msg["attrs"] = [["TCA_KIND", "bpf"]]
    if program is not None:
        msg["attrs"].append(["TCA_OPTIONS", {"attrs": [
            ["TCA_BPF_OPS_LEN", len(program)], ["TCA_BPF_OPS", packed(program)],
            ["TCA_BPF_FLAGS", TCA_BPF_FLAG_ACT_DIRECT]]}])
    return msg


def send(ipr: Any, msg: tcmsg) -> None:
    """Send one request on pyroute2's socket and wait for the kernel's acknowledgement (a refusal
    raises pyroute2's ``NetlinkError``). ``nlm_request_batch`` takes a message whose header is already
    set, and is synchronous on both pyroute2 0.7's ``IPRoute`` and 0.9's."""
    ipr.nlm_request_batch([msg])


def ops(listed: Any) -> bytes:
    """The classic-BPF program of a filter message pyroute2 parsed (a dump entry), read again with
    sld's :class:`tcmsg` from the message's own bytes: b"" when it carries none."""
    ours = tcmsg(listed.data, offset=listed.offset)
    ours.decode()
    opts = ours.get_attr("TCA_OPTIONS")
    return bytes(opts.get_attr("TCA_BPF_OPS") or b"") if opts is not None else b""
