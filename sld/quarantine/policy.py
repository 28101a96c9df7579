"""When to quarantine: the configured verdicts apply it, a passing verification lifts it.

The kernel is the source of truth: at start-up the daemon reads what is installed (reconcile) and
the next verdict decides; nothing is lifted on shutdown or crash.
"""

from __future__ import annotations

from sld.config import QuarantineConfig
from sld.quarantine import tc
from sld.quarantine.pcap import Insn, tc_program


class Quarantine:
    def __init__(self, config: QuarantineConfig, netns: str | None = None) -> None:
        self.config = config
        self.netns = netns
        self.program: list[Insn] = tc_program(config.allow) if config.enabled else []  # ConfigError if bad
        self.changes = 0
        self.active = self.installed()

    def installed(self) -> bool:
        """Whether sld's filters are on any configured interface right now (the kernel's view)."""
        return self.config.enabled and any(tc.status(i, self.netns) for i in self.config.interfaces)

    def decide(self, state: str) -> str | None:
        """``state`` is a verdict result or ``degraded``; returns what was done (for the journal)."""
        if not self.config.enabled:
            return None
        if state in self.config.on and not self.active:
            action = "apply"
        elif state == "verified" and self.active:
            action = "lift"
        else:
            return None
        if self.config.dry_run:
            return f"dry run: would {action}"
        for ifname in self.config.interfaces:
            if action == "apply":
                tc.apply(ifname, self.program, self.netns)
            else:
                tc.lift(ifname, self.netns)
        self.active = action == "apply"
        self.changes += 1
        return "applied" if self.active else "lifted"
