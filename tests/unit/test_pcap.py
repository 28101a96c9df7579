"""libpcap compiles the operator's allow expression; sld maps its verdicts to tc actions."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sld.config import QuarantineConfig
from sld.errors import ConfigError
from sld.quarantine.pcap import (
    BPF_MAXINSNS,
    BPF_RET_K,
    COMPILE_SECONDS,
    TC_ACT_OK,
    TC_ACT_SHOT,
    compile_filter,
    tc_program,
)
from sld.quarantine.policy import Quarantine


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


def _compilers_left() -> list[str]:
    """Command lines of this process's children still running the libpcap compiler."""
    children = [pid for task in Path("/proc/self/task").iterdir()
                for pid in (task / "children").read_text().split()]
    return [cmd for pid in children if "sld.quarantine.pcap" in (cmd := _cmdline(pid))]


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# A thousand host terms: libpcap's optimizer needs ~25 s for these on the project's machine.
SLOW = " or ".join(f"host 10.{i // 250}.{i % 250}.1" for i in range(1000))


def test_a_compile_slower_than_its_deadline_is_refused_and_the_compiler_killed() -> None:
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        tc_program(SLOW, seconds=0.5)
    assert time.monotonic() - start < 3
    assert err.value.key == "quarantine.allow" and "within 0.5 s" in str(err.value)
    assert _compilers_left() == []
    assert len(tc_program("tcp port 22", seconds=0.5 + 10)) < 30  # a plain expression is well inside any deadline


def test_loading_a_quarantine_is_bounded_by_the_documented_deadline() -> None:
    """What the daemon does at start and reload (on its main loop, under a 30 s watchdog)."""
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        Quarantine(QuarantineConfig(enabled=True, interfaces=("lo",), allow=SLOW))
    assert COMPILE_SECONDS <= time.monotonic() - start < COMPILE_SECONDS + 3
    assert err.value.key == "quarantine.allow" and f"within {COMPILE_SECONDS:g} s" in str(err.value)
    assert f"more than {COMPILE_SECONDS:g} s to compile" in (Path(__file__).parents[2] / "conf/sld.toml").read_text()
