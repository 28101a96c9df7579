"""The extend lock (sld.lock): keyed to the TPM, never through a planted link, never truncating."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sld import lock
from sld.errors import LockError


@pytest.fixture
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The lock directory root would use (/run/sld) moved under tmp_path, for root and other users alike."""
    monkeypatch.setattr(lock, "LOCK_DIR", str(tmp_path / "sld"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    yield tmp_path / "sld"


def tcti() -> str:
    """A TCTI no other test (nor a real daemon) locks: the abstract socket name is machine-wide."""
    return f"swtpm:host=127.0.0.1,port={uuid.uuid4().int % 50000 + 10000}"


@pytest.mark.parametrize(("a", "b"), [
    ("swtpm:host=localhost,port=2400", "mssim:port=2400,host=127.0.0.1"),
    ("swtpm", "swtpm:host=::1,port=2321"),
    ("device:/dev/tpm0", "device:/dev/tpmrm0"),
    ("device", "device:/dev/tpmrm0"),
])
def test_spellings_of_one_tpm_are_one_identity(a: str, b: str) -> None:
    assert lock.tpm_identity(a) == lock.tpm_identity(b)


@pytest.mark.parametrize(("a", "b"), [
    ("swtpm:port=2400", "swtpm:port=2402"),
    ("device:/dev/tpm0", "device:/dev/tpm1"),
    ("swtpm:host=192.0.2.1,port=2321", "swtpm:port=2321"),
])
def test_different_tpms_are_different_identities(a: str, b: str) -> None:
    assert lock.tpm_identity(a) != lock.tpm_identity(b)


def test_a_second_holder_waits_and_gives_up_with_a_lock_error(lock_dir: Path) -> None:
    name = tcti()
    with lock.extend_lock(name):
        with pytest.raises(LockError, match="held by") as err:
            with lock.extend_lock(name.replace("127.0.0.1", "localhost"), wait_s=0.2):
                pass
    assert err.value.exit_code == 5
    with lock.extend_lock(name, wait_s=0.2):  # released on exit
        pass


def test_a_different_lock_directory_does_not_split_the_lock(lock_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    """What PrivateTmp or a second --lock path did to the old lock: the abstract socket still excludes."""
    name = tcti()
    with lock.extend_lock(name):
        monkeypatch.setattr(lock, "LOCK_DIR", str(tmp_path / "other"))
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "other-user"))
        with pytest.raises(LockError, match="@sld-extend"):
            with lock.extend_lock(name, wait_s=0.2):
                pass


def test_the_waiter_gets_the_lock_when_the_holder_releases_it(lock_dir: Path) -> None:
    name, order = tcti(), []
    holding = threading.Event()

    def holder() -> None:
        with lock.extend_lock(name):
            holding.set()
            order.append("first")
            threading.Event().wait(0.3)
            order.append("first done")

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(5)
    with lock.extend_lock(name, wait_s=5):
        order.append("second")
    thread.join()
    assert order == ["first", "first done", "second"]


def test_a_planted_symlink_is_refused_and_its_target_untouched(lock_dir: Path, tmp_path: Path) -> None:
    name = tcti()
    lock_dir.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    (lock_dir / f"extend:{lock._key(lock.tpm_identity(name))}.lock").symlink_to(victim)
    with pytest.raises(LockError, match="extend lock"):
        with lock.extend_lock(name, wait_s=0.2):
            pass
    assert victim.read_text() == "root's file\n"


def test_the_lock_file_is_never_truncated_or_written(lock_dir: Path) -> None:
    name = tcti()
    lock_dir.mkdir(mode=0o700)
    path = lock_dir / f"extend:{lock._key(lock.tpm_identity(name))}.lock"
    path.write_text("kept\n")
    path.chmod(0o600)
    with lock.extend_lock(name):
        pass
    assert path.read_text() == "kept\n"


def test_a_directory_others_can_write_is_refused(lock_dir: Path) -> None:
    lock_dir.mkdir()
    lock_dir.chmod(0o777)
    with pytest.raises(LockError, match="only uid"):
        with lock.extend_lock(tcti(), wait_s=0.2):
            pass
    assert os.listdir(lock_dir) == []


@pytest.mark.parametrize("kind", ["fifo", "char-device", "directory"])
def test_a_lock_path_that_is_not_a_regular_file_is_a_lock_error(lock_dir: Path, kind: str) -> None:
    """What `--lock /dev/null` once did (exit 70): a device, a FIFO or a directory where the lock file
    goes is refused at once, exit 5, and nothing is opened for writing on it."""
    if kind == "char-device" and os.geteuid() != 0:
        pytest.skip("mknod of a character device needs root")
    name = tcti()
    lock_dir.mkdir(mode=0o700)
    path = lock_dir / f"extend:{lock._key(lock.tpm_identity(name))}.lock"
    {"fifo": lambda: os.mkfifo(path), "directory": lambda: path.mkdir(),
     "char-device": lambda: os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))}[kind]()  # 1,3: /dev/null
    with pytest.raises(LockError) as err:
        with lock.extend_lock(name, wait_s=0.2):
            pass
    assert err.value.exit_code == 5 and str(path) in str(err.value)


def test_there_is_no_lock_path_to_give() -> None:
    """The lock is keyed to the TPM, so `sld verify --lock PATH` is a usage error (exit 2), not a path used."""
    run = subprocess.run([sys.executable, "-m", "sld.cli", "verify", "--lock", "/dev/null"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "unrecognized arguments: --lock" in run.stderr and "Traceback" not in run.stderr
