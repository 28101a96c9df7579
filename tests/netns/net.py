"""Network namespaces and veth pairs the netns tests create (never a real interface)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextmanager
def namespaces(*roles: str) -> Iterator[dict[str, str]]:
    """One fresh namespace per role (lo up), deleted afterwards with everything in it."""
    tag = uuid.uuid4().hex[:6]
    names = {role: f"sld{role[:4]}{tag}" for role in roles}
    try:
        for name in names.values():
            ip("netns", "add", name)
            ip("-n", name, "link", "set", "lo", "up")
        yield names
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def veth(a: str, a_dev: str, a_addr: str, b: str, b_dev: str, b_addr: str) -> None:
    """A veth pair from namespace ``a`` to ``b``, with a /24 address on each end, both up."""
    ip("-n", a, "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", b)
    for ns, dev, addr in ((a, a_dev, a_addr), (b, b_dev, b_addr)):
        ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        ip("-n", ns, "link", "set", dev, "up")


def python_in(ns: str, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout)
