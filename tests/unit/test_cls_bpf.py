"""sld's classic-BPF filter message: built and read back with no socket (pyroute2 marshal style), and
pyroute2's own ``bpf`` declaration left exactly as pyroute2 ships it."""

from __future__ import annotations

from pyroute2.netlink.rtnl import RTM_DELTFILTER, RTM_NEWTFILTER
from pyroute2.netlink.rtnl.tcmsg import sched_bpf
from pyroute2.netlink.rtnl.tcmsg import tcmsg as pyroute2_tcmsg

from sld.quarantine import cls_bpf, tc
from sld.quarantine.pcap import tc_program


def _wire(msg: cls_bpf.tcmsg) -> pyroute2_tcmsg:
    """The bytes ``msg`` puts on the netlink socket, parsed back as pyroute2's socket parses a dump."""
    msg.encode()
    parsed = pyroute2_tcmsg(bytes(msg.data))
    parsed.decode()
    return parsed


def test_the_program_goes_out_and_comes_back_as_sock_filter_records() -> None:
    program = tc_program("tcp port 22")
    parsed = _wire(cls_bpf.message(7, tc.HANDLES[0], tc.INGRESS, tc.PRIO, tc.ETH_P_ALL, program))
    assert parsed["header"]["type"] == RTM_NEWTFILTER and parsed["header"]["flags"] == cls_bpf.REPLACE
    assert (parsed["index"], parsed["handle"], parsed["parent"]) == (7, tc.HANDLES[0], tc.INGRESS)
    assert parsed["info"] >> 16 == tc.PRIO and parsed["info"] & 0xFFFF == 0x0300  # ETH_P_ALL, network order
    assert cls_bpf.ops(parsed) == cls_bpf.packed(program) and len(cls_bpf.ops(parsed)) == 8 * len(program)
    opts = cls_bpf.tcmsg(parsed.data, offset=parsed.offset)
    opts.decode()
    bpf = opts.get_attr("TCA_OPTIONS")
    assert bpf.get_attr("TCA_BPF_OPS_LEN") == len(program)
    assert bpf.get_attr("TCA_BPF_FLAGS") == cls_bpf.TCA_BPF_FLAG_ACT_DIRECT


def test_a_delete_carries_no_program() -> None:
    parsed = _wire(cls_bpf.message(7, tc.HANDLES[0], tc.EGRESS, tc.PRIO, tc.ETH_P_ALL))
    assert parsed["header"]["type"] == RTM_DELTFILTER and parsed["header"]["flags"] == cls_bpf.DELETE
    assert parsed.get_attr("TCA_KIND") == "bpf" and parsed.get_attr("TCA_OPTIONS") is None
    assert cls_bpf.ops(parsed) == b""


def test_pyroute2s_own_bpf_declaration_is_untouched() -> None:
    _wire(cls_bpf.message(7, tc.HANDLES[0], tc.INGRESS, tc.PRIO, tc.ETH_P_ALL, tc_program("udp")))
    declared = dict(sched_bpf.options.nla_map)
    assert declared["TCA_BPF_OPS"] == "uint32" and declared["TCA_BPF_OPS_LEN"] == "uint32"
    assert not hasattr(sched_bpf, "bpf_ops") and "_sld_classic_bpf" not in vars(sched_bpf)
    assert pyroute2_tcmsg.get_plugin is not cls_bpf.tcmsg.get_plugin
