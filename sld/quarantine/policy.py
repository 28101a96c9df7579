"""When to quarantine, reconciled with what the kernel holds: the configured verdicts apply it, a
passing verification lifts it, and every decision starts from the kernel's own listing.

The kernel is the source of truth. At start-up and at every verdict (every interval) the filters are
listed again: a quarantine lifted by hand (``sld quarantine lift --force``) while the verdict still
fails is re-applied, a filter with another program (the allow list changed on reload) is replaced,
and foreign filters that run before sld's (:func:`sld.quarantine.tc.overtaking`) are reported and,
as far as tc allows, put behind it again (:func:`sld.quarantine.tc.placed`, :mod:`sld.quarantine.tc`). What
is reported as active is what is installed, never what sld last asked for. Nothing is lifted on
shutdown or crash.
"""

from __future__ import annotations

from typing import Protocol

from sld.quarantine import tc
from sld.quarantine.pcap import Insn, tc_program
from sld.records import Record
from sld.vocab import Result


class Settings(Protocol):
    """What the quarantine needs from ``[quarantine]`` (``sld.config.QuarantineConfig`` is one)."""

    @property
    def enabled(self) -> bool:
        """Whether sld manages a quarantine at all (off: it never lists or touches a filter)."""
        ...

    @property
    def interfaces(self) -> tuple[str, ...]:
        """The interfaces whose clsact ingress and egress hooks get sld's filter."""
        ...

    @property
    def allow(self) -> str:
        """The pcap-filter(7) expression of what still passes (ARP always does)."""
        ...

    @property
    def on(self) -> tuple[str, ...]:
        """The verdict results (or ``degraded``) that put the quarantine in place."""
        ...

    @property
    def dry_run(self) -> bool:
        """Journal what would be done, change nothing in the kernel."""
        ...


class Observed(Record):
    """The kernel's view of the configured interfaces at one moment."""

    filters: tuple[tc.Filter, ...] = ()
    expected: int = 0  # sld filters a complete quarantine has: ingress and egress per interface

    @property
    def ours(self) -> tuple[tc.Filter, ...]:
        """sld's own filters among those listed."""
        return tuple(f for f in self.filters if f.ours)

    @property
    def complete(self) -> bool:
        """sld's filter is on both hooks of every configured interface (what ``active`` reports)."""
        return self.expected > 0 and len(self.ours) == self.expected

    @property
    def overtaking(self) -> tuple[tc.Filter, ...]:
        """Foreign filters that the kernel runs before sld's (:func:`sld.quarantine.tc.overtaking`)."""
        return tuple(tc.overtaking(list(self.filters)))


class Quarantine:
    """The quarantine of one configuration; a ConfigError at construction (start-up, reload) for an
    ``allow`` the kernel would refuse or an interface that does not exist."""

    def __init__(self, settings: Settings, netns: str | None = None) -> None:
        self.settings = settings
        self.netns = netns
        self.program: list[Insn] = tc_program(settings.allow) if settings.enabled else []
        self.changes = 0
        self.observed = self.observe()  # a ConfigError naming quarantine.interfaces if one does not exist

    @property
    def active(self) -> bool:
        """sld's filters are on both directions of every configured interface, as last listed."""
        return self.observed.complete

    def observe(self) -> Observed:
        """List every filter on the configured interfaces now (netlink dump, the kernel's own view)."""
        if not self.settings.enabled:
            return Observed()
        listed = tuple(f for i in self.settings.interfaces for f in tc.filters(i, self.netns))
        return Observed(listed, 2 * len(self.settings.interfaces))

    def decide(self, state: str) -> str | None:
        """``state`` is a verdict result or ``degraded``; returns what was done (for the journal)."""
        if not self.settings.enabled:
            return None
        self.observed = self.observe()
        before, placed = self.observed.overtaking, tc.placed(list(self.observed.filters))
        current = self.observed.complete and placed and all(f.runs(self.program) for f in self.observed.ours)
        if state in self.settings.on and not current:
            action = "re-apply" if self.changes and not (self.observed.ours and placed) else "apply"
        elif state == Result.VERIFIED and self.observed.ours:
            action = "lift"
        else:
            return None
        if self.settings.dry_run:
            return f"dry run: would {action}"
        for ifname in self.settings.interfaces:
            if action == "lift":
                tc.lift(ifname, self.netns)
            else:
                tc.apply(ifname, self.program, self.netns)
        self.changes += 1
        self.observed = self.observe()
        done = {"apply": "applied", "re-apply": "re-applied", "lift": "lifted"}[action]
        after = self.observed.overtaking  # a property that regroups the listed filters: once, not per filter
        passed = [f for f in before if f not in after]  # now behind sld's filter
        return f"{done} in front of {'; '.join(map(str, passed))}" if passed and action != "lift" else done

    def release(self, successor: Settings | None) -> int:
        """Lift sld's filters from the interfaces ``successor`` (the reloaded configuration) does not
        quarantine: a reload that disables the quarantine or drops an interface leaves nothing behind."""
        keep = set(successor.interfaces) if successor is not None and successor.enabled else set()
        return sum(tc.lift(i, self.netns) for i in self.settings.interfaces if i not in keep)
