"""The extend lock: one extender per TPM, whatever paths, namespaces or users the extenders have.

Two extenders resuming the same Secure Launch window would both extend the remaining events, and a
PCR extended twice stays wrong until the next reset (TCG PC Client PFP 3.3.4: PCR17-22 are reset only
by a dynamic launch). So the lock is keyed to the TPM a TCTI string reaches, never to a path an
operator chooses, and is taken twice, each covering what the other cannot:

- an abstract-namespace Unix socket (``@sld-extend:IDENTITY``, unix(7)), bound for as long as the lock is
  held: mount namespaces (systemd's PrivateTmp, PrivateMounts) do not split it, and the kernel releases
  it when the holder dies;
- ``flock(2)`` on ``extend:IDENTITY.lock`` in a fixed root-owned directory (/run/sld): network
  namespaces (PrivateNetwork) do not split it, and no unprivileged user can plant anything there.

The file is opened with O_NOFOLLOW, never truncated and never written; a holder is found by the
socket's peer credentials (``ss -xlp | grep sld-extend``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import stat
import struct
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from sld.errors import LockError
from sld.paths import DEFAULT_TCTI

LOCK_DIR = "/run/sld"
WAIT_S = 10.0  # an extend takes milliseconds: a holder this slow is stuck (below [verify] timeout, so this names it)
_POLL_S = 0.01
_PROBE_S = 0.2
_SILENT_PROBES = 20  # bound but not listening for this many polls: a squatter, not an extender mid-bind
_TCP_DEFAULTS = {"swtpm": 2321, "mssim": 2321}  # tpm2-tss tcti-swtpm / tcti-mssim default port
_LOOPBACK = {"", "localhost", "127.0.0.1", "::1", "ip6-localhost"}


def tpm_identity(tcti: str) -> str:
    """What a TCTI string reaches, spelled one way: ``device:tpm0``, ``tcp:127.0.0.1:2321``, ...

    /dev/tpm0 and /dev/tpmrm0 are one TPM (the kernel's raw and resource-managed views); swtpm and
    mssim TCTIs speak the same protocol to the same server; ``localhost`` and 127.0.0.1 are one host.
    """
    name, _, conf = tcti.strip().partition(":")
    if name == "device":
        path = os.path.realpath(conf or DEFAULT_TCTI.partition(":")[2])
        return "device:" + re.sub(r"^tpmrm(\d+)$", r"tpm\1", os.path.basename(path))
    if name in _TCP_DEFAULTS:
        opts = dict(kv.partition("=")[::2] for kv in conf.split(",") if kv)
        if "path" in opts:
            return "unix:" + os.path.realpath(opts["path"])
        host = opts.get("host", "localhost")
        return f"tcp:{'127.0.0.1' if host in _LOOPBACK else host}:{opts.get('port', _TCP_DEFAULTS[name])}"
    return tcti.strip()


def _key(identity: str) -> str:
    """The identity as one path component (the socket name is bounded by sun_path's 108 bytes)."""
    return re.sub(r"[^A-Za-z0-9.:_-]", "_", identity)[:96]


def _lock_dir() -> str:
    """/run/sld for root (where the unit's RuntimeDirectory is); a user's own runtime dir otherwise."""
    if os.geteuid() == 0:
        return LOCK_DIR
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}", "sld")


def _private_dir(path: str) -> None:
    """Create ``path`` 0700, or accept it only as a real directory of ours that nobody else can write."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as err:
        raise LockError(f"extend lock directory {path}: {err.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise LockError(f"extend lock directory {path} is not a directory only uid {os.geteuid()} can write "
                        f"(mode {stat.filemode(st.st_mode)}, owner {st.st_uid})")


def _file_lock(path: str, deadline: float) -> int:
    """flock(LOCK_EX) on a regular file of ours, waiting until ``deadline``; the fd holds the lock."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except OSError as err:
        raise LockError(f"extend lock {path}: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise LockError(f"extend lock {path} is not a regular file owned by uid {os.geteuid()}")
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockError(f"extend lock {path} is held by another extender: gave up waiting") from None
                time.sleep(_POLL_S)
    except BaseException:
        os.close(fd)
        raise


def _holder(name: bytes) -> tuple[int, int] | None:
    """(pid, uid) of the process listening on abstract socket ``name`` (SO_PEERCRED), None if none listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(_PROBE_S)  # a squatter's full backlog must not block us
        try:
            probe.connect(name)
        except OSError:
            return None
        pid, uid, _gid = struct.unpack("3i", probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        return pid, uid


def _socket_lock(name: bytes, deadline: float) -> socket.socket | None:
    """Bind ``name`` in the abstract namespace; None when it is squatted by what cannot be an extender.

    Any local user can bind any abstract name, so a holder counts only if it listens (every extender
    does, from bind on) as root or as us: a squatter cannot stop root's extends, and root's extenders
    still exclude each other through the file lock in root's directory.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    what = f"extend lock @{name[1:].decode()}"
    holder, silent = None, 0
    try:
        while True:
            try:
                sock.bind(name)
                sock.listen(128)
                return sock
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    raise LockError(f"{what}: {err.strerror}") from None
            if holder is None:  # probe until a holder answers, once: probes fill its backlog
                holder = _holder(name)
                silent = 0 if holder else silent + 1
                if silent > _SILENT_PROBES or (holder and holder[1] not in (0, os.geteuid())):
                    sock.close()
                    return None
            if time.monotonic() >= deadline:
                raise LockError(f"{what} is held by pid {holder[0] if holder else '?'}: gave up waiting")
            time.sleep(_POLL_S)
    except BaseException:
        sock.close()
        raise


@contextmanager
def extend_lock(tcti: str, *, wait_s: float = WAIT_S) -> Iterator[str]:
    """Hold the extend lock of the TPM ``tcti`` reaches (yields its identity); released on exit or death."""
    identity = tpm_identity(tcti)
    key = _key(identity)
    directory = _lock_dir()
    _private_dir(directory)
    deadline = time.monotonic() + wait_s
    with ExitStack() as held:
        fd = _file_lock(os.path.join(directory, f"extend:{key}.lock"), deadline)
        held.callback(os.close, fd)
        sock = _socket_lock(b"\0sld-extend:" + key.encode(), deadline)
        if sock is not None:
            held.callback(sock.close)
        yield identity
