"""The extend lock across what splits one of its halves: a network namespace (abstract socket names are
per network namespace, the file lock is not) and another user squatting the abstract name."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sld import lock
from sld.errors import LockError

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and a second uid need root"),
              pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is absent")]

HOLD = """
import sys, time
from sld import lock
lock.LOCK_DIR = sys.argv[1]
with lock.extend_lock(sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""
NOBODY = 65534


def tcti() -> str:
    return f"swtpm:host=127.0.0.1,port={uuid.uuid4().int % 50000 + 10000}"


def test_a_holder_in_another_network_namespace_still_excludes(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock, "LOCK_DIR", str(tmp_path / "sld"))
    name = tcti()
    holder = subprocess.Popen(["unshare", "-n", sys.executable, "-c", HOLD, str(tmp_path / "sld"), name, "3"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(LockError, match=r"extend:tcp:127\.0\.0\.1:\d+\.lock is held"):
            with lock.extend_lock(name, wait_s=0.5):
                pass
    finally:
        holder.wait(10)
    with lock.extend_lock(name, wait_s=0.5):
        pass


@pytest.mark.parametrize("listens", [True, False], ids=["listening", "bound-only"])
def test_another_users_squat_on_the_abstract_name_does_not_stop_root(tmp_path: Path, listens: bool,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock, "LOCK_DIR", str(tmp_path / "sld"))
    name = tcti()
    abstract = b"\0sld-extend:" + lock._key(lock.tpm_identity(name)).encode()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the squatter: nobody, holding the name until killed
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            squat = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            squat.bind(abstract)
            if listens:
                squat.listen(0)
            os.write(ready_w, b"x")
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"x"
        t0 = time.monotonic()
        with lock.extend_lock(name, wait_s=5):
            pass
        assert time.monotonic() - t0 < 2
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)
