"""libpcap compiles the operator's allow expression; sld maps its verdicts to tc actions."""

from __future__ import annotations

import pytest

from sld.errors import ConfigError
from sld.quarantine.pcap import BPF_MAXINSNS, BPF_RET_K, TC_ACT_OK, TC_ACT_SHOT, compile_filter, tc_program


def test_returns_become_tc_actions() -> None:
    raw = compile_filter("arp or (tcp port 22 or net 10.20.0.0/16)")
    ours = tc_program("tcp port 22 or net 10.20.0.0/16")
    assert [op[:3] for op in ours] == [op[:3] for op in raw]  # same program, only return values differ
    rets = {(r[3], o[3]) for r, o in zip(raw, ours, strict=True) if r[0] == BPF_RET_K}
    assert rets == {(0, TC_ACT_SHOT), (65535, TC_ACT_OK)} or rets == {(0, TC_ACT_SHOT), (262144, TC_ACT_OK)}


def test_bad_expression_is_refused_with_libpcaps_message() -> None:
    with pytest.raises(ConfigError) as err:
        tc_program("tcp prot 22")
    assert err.value.key == "quarantine.allow" and "syntax error" in str(err.value)


@pytest.mark.parametrize("hosts", [500, 1000])  # ~4,900 and ~9,900 instructions: above the kernel's 4,096
def test_an_allow_list_longer_than_the_kernel_takes_is_refused(hosts: int) -> None:
    expression = " or ".join(f"ether host 02:00:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(hosts))
    with pytest.raises(ConfigError) as err:
        tc_program(expression)
    assert err.value.key == "quarantine.allow" and "at most 4096" in str(err.value)
    assert len(tc_program(" or ".join(expression.split(" or ")[:400]))) <= BPF_MAXINSNS
