"""``sld quarantine status|apply|lift``: what the kernel holds, and the operator's hand on it."""

from __future__ import annotations

import argparse

from sld.errors import ConfigError
from sld.report import dump_json, table


def run(args: argparse.Namespace) -> int:
    """The operator's hand on the quarantine: status from the kernel's own listing, apply, and lift only
    with ``--force`` (the daemon lifts it by itself when a verification passes).
    """
    from sld.config import load
    from sld.quarantine import tc
    from sld.quarantine.pcap import tc_program

    q = load(args.config).quarantine
    interfaces = args.interface or list(q.interfaces)
    if not interfaces:
        raise ConfigError("no interfaces: set [quarantine] interfaces or pass --interface", key="quarantine.interfaces")
    if args.action == "apply":
        program = tc_program(q.allow)
        for ifname in interfaces:
            tc.apply(ifname, program)
        print(f"quarantine applied on {', '.join(interfaces)}; allowed: arp or ({q.allow})")
        return 0
    if args.action == "lift":
        if not args.force:
            raise ConfigError("lifting by hand needs --force (a passing verification lifts it by itself)",
                              key="force")
        removed = sum(tc.lift(ifname) for ifname in interfaces)
        print(f"removed {removed} quarantine filters from {', '.join(interfaces)}")
        return 0
    listed = [f for ifname in interfaces for f in tc.filters(ifname)]
    rows, overtaking = [f for f in listed if f.ours], tc.overtaking(listed)
    if args.json:
        print(dump_json("quarantine.status", {"active": bool(rows), "filters": rows, "overtaking": overtaking}))
        return 0
    print(table(((f.ifname, f.direction, f.prio, f"0x{f.handle:x}", f.ops) for f in rows),
                ("INTERFACE", "DIRECTION", "PRIO", "HANDLE", "BPF OPS")) if rows else "no quarantine installed")
    for f in overtaking:
        print(f"warning: {f} runs before sld's filters and may let traffic past the quarantine")
    return 0
