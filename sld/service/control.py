"""The control socket: JSON lines over a root-only Unix socket (peer credentials checked).

Requests: {"cmd": "status" | "stats" | "verify" | "debug" | "attest", ...}; one JSON object answers
each line, an ``{"error": ...}`` object when the request cannot be served. ``stats`` carries
``stats_version``, bumped whenever its shape changes. ``verify`` with ``"render": "json" | "text"``
(sld.client) answers the exit code on a line, then the verdict exactly as ``sld verify`` prints it.

One thread serves every connection through a selector, so no client can take a thread, a descriptor
or memory for long: at most ``MAX_CONNECTIONS`` are open (a new one evicts the oldest that has no
answer in hand), each has ``REQUEST_TIMEOUT`` seconds to send its line and read its reply,
a line longer than ``MAX_LINE`` is refused unread, and only one request per connection is in hand
at a time. Verification runs off this thread (the service's worker); its reply is sent when done.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import selectors
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from sld.errors import ConfigError, SldError, SourceError
from sld.service import journal
from sld.service.state import DaemonStatus, failed_checks

STATS_VERSION = 2
MAX_LINE = 64 * 1024
MAX_CONNECTIONS = 64
REQUEST_TIMEOUT = 5.0
BACKLOG = 128  # socketserver's 5 refuses bursts of clients (EAGAIN on a Unix socket)
ACCEPTS_PER_TURN = 16  # a flood of connects cannot starve clients already accepted
log = logging.getLogger("sld.control")


class Service(Protocol):
    """What the control socket asks of the daemon; long work comes back as a Future."""

    def status(self) -> DaemonStatus:
        """The daemon's latest published state."""
        ...

    def verify(self) -> Future[Any]:
        """A fresh verification; resolves to the Verdict, or None when the daemon is degraded."""
        ...

    def attest(self, nonce: bytes) -> Future[Mapping[str, Any]]:
        """Evidence bound to ``nonce``; an SldError when attestation is not available."""
        ...


class BadRequest(SldError):
    """A control request that is not one the socket serves (the reply names why)."""


def parse(line: bytes) -> dict[str, Any]:
    """One request line -> its object; anything else (not JSON, too deep, not an object) is BadRequest."""
    try:
        request = json.loads(line)
    except (ValueError, RecursionError) as err:
        raise BadRequest(f"bad request: not JSON ({type(err).__name__})") from None
    if not isinstance(request, dict):
        raise BadRequest(f"bad request: expected a JSON object, got {type(request).__name__}")
    return request


def status_reply(s: DaemonStatus, now: float) -> dict[str, Any]:
    """``sld status``: the last verdict (with its age, and whether it is stale) apart from the current error."""
    verdict = None
    if s.verdict is not None:
        verdict = {"result": s.verdict.result, "summary": s.verdict.summary, "age_seconds": s.verdict_age(now),
                   "stale": s.stale, "failed_checks": list(failed_checks(s.verdict))}
    return {"state": s.state, "launch_verified": s.launch_verified, "verdict": verdict, "error": s.error or None,
            "error_age_seconds": max(0.0, now - s.error_time) if s.error else None, "exit_code": s.exit_code,
            "quarantined": s.quarantine_active, "quarantine_overtaken_by": list(s.quarantine_overtaking)}


def stats_reply(s: DaemonStatus) -> dict[str, Any]:
    """Counters and times of the published state, everything but the verdict itself."""
    from sld.report import jsonable

    counters = {f.name: jsonable(getattr(s, f.name)) for f in fields(s) if f.name != "verdict"}
    return {"stats_version": STATS_VERSION, **counters}


@dataclass(eq=False)
class _Conn:
    """One client: what it sent, what we owe it, and until when it may take."""

    sock: socket.socket
    deadline: float
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)
    request: dict[str, Any] | None = None  # the request in hand while its Future runs (verify, attest)
    pending: Future[Any] | None = None
    eof: bool = False
    last: bool = False  # close once the outbox is out
    draining: bool = False  # answered for good: read and discard until the client's EOF, then close
    events: int = 0

    @property
    def idle(self) -> bool:
        """Nothing in hand: evicting it loses no answer."""
        return self.pending is None and not self.outbox and not self.draining


class ControlServer:
    """The selector loop over the listening socket and its connections (see the module doc).

    ``shutdown`` and ``server_close`` mirror socketserver's, so the daemon stops every listener alike.
    """

    def __init__(self, path: str, service: Service, gid: int | None, verify_timeout: float) -> None:
        self.path, self.service, self.gid, self.verify_timeout = path, service, gid, verify_timeout
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self.identity = _identity(path)
        self._listener.listen(BACKLOG)
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._conns: dict[socket.socket, _Conn] = {}
        self._done: list[_Conn] = []
        self._done_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="control", daemon=True)

    def start(self) -> None:
        """Serve on the control thread (a daemon thread: a stuck client never holds up the exit)."""
        self._thread.start()

    def shutdown(self) -> None:
        """Stop the loop and wait for it (socketserver's name, so the daemon stops every listener alike)."""
        self._stop.set()
        self._wake_w.send(b"\0")
        self._thread.join(timeout=5)

    def server_close(self) -> None:
        """Close every connection and the listener; unlink the socket only if it is still the one we bound."""
        for conn in list(self._conns.values()):
            self._close(conn)
        self._selector.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        if _identity(self.path) == self.identity:
            os.unlink(self.path)

    # --- the loop ----------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            for key, _events in self._selector.select(timeout=1.0):
                conn = self._conns.get(key.fileobj)  # type: ignore[call-overload]
                self._guarded(conn, self._ready, key.fileobj, conn)
            with self._done_lock:
                done, self._done = self._done, []
            for conn in done:
                self._guarded(conn, self._finish, conn)
            now = time.monotonic()
            for conn in [c for c in self._conns.values() if c.deadline < now]:
                self._guarded(conn, self._expire, conn)

    def _guarded(self, conn: _Conn | None, step: Callable[..., None], *args: Any) -> None:
        """One step for one connection: whatever goes wrong closes that connection, never the loop."""
        try:
            step(*args)
        except Exception:  # one client's trouble never ends the loop that serves the others
            log.exception("control socket: internal error")
            if conn is not None:
                self._close(conn)

    def _ready(self, sock: socket.socket, conn: _Conn | None) -> None:
        if sock is self._listener:
            self._accept()
        elif sock is self._wake_r:
            while _recv(sock, 4096):
                pass
        elif conn is not None:
            if conn.outbox:
                self._write(conn)
            else:
                self._read(conn)

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            try:
                sock, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # EMFILE and the like: the backlog waits, the loop goes on
                log.warning("control socket: accept: %s", err.strerror or err)
                return
            sock.setblocking(False)
            if len(self._conns) >= MAX_CONNECTIONS:
                self._evict()
            conn = _Conn(sock, time.monotonic() + REQUEST_TIMEOUT)
            self._conns[sock] = conn
            refusal = self._refusal(sock)
            if refusal:
                self._reply(conn, {"error": refusal}, last=True)
            else:
                self._read(conn)  # a client that sent at once is answered before a newer connection evicts it

    def _evict(self) -> None:
        """Make room: the oldest connection that has no answer in hand, else the oldest of all."""
        conns = list(self._conns.values())
        victim = min((c for c in conns if c.idle), key=lambda c: c.deadline, default=None)
        self._close(victim or min(conns, key=lambda c: c.deadline))

    def _refusal(self, sock: socket.socket) -> str:
        pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                            struct.calcsize("3i")))
        if uid == 0 or (self.gid is not None and self.gid in {gid, *_groups(pid, uid, gid)}):
            return ""
        return "permission denied: the control socket serves root and the [control] group only"

    def _read(self, conn: _Conn) -> None:
        data = _recv(conn.sock, MAX_LINE if conn.draining else MAX_LINE + 1 - len(conn.inbox))
        if data is None:
            self._watch(conn)
            return
        conn.eof = not data
        if conn.draining:  # discarded: closing with unread data would reset the client before it reads
            if conn.eof:
                self._close(conn)
            return
        conn.inbox += data
        self._serve(conn)

    def _serve(self, conn: _Conn) -> None:
        """Answer the next complete line of the inbox, then wait for what comes next."""
        line, newline, rest = bytes(conn.inbox).partition(b"\n")
        if not newline and len(conn.inbox) > MAX_LINE:
            self._reply(conn, {"error": f"request too long (over {MAX_LINE} bytes without a newline)"}, last=True)
            return
        if newline or (conn.eof and line.strip()):
            conn.inbox[:] = rest
            conn.deadline = time.monotonic() + REQUEST_TIMEOUT
            try:
                self._answer(conn, parse(line))
            except SldError as err:
                self._reply(conn, {"error": str(err)})
            return
        if conn.eof:
            self._close(conn)
        else:
            self._watch(conn)

    def _answer(self, conn: _Conn, request: dict[str, Any]) -> None:
        cmd = request.get("cmd")
        if cmd == "status":
            self._reply(conn, status_reply(self.service.status(), time.time()))
        elif cmd == "stats":
            self._reply(conn, stats_reply(self.service.status()))
        elif cmd == "debug":
            self._reply(conn, {"debug": _debug(request.get("categories", []))})
        elif cmd == "verify" or cmd == "attest":
            future = self.service.verify() if cmd == "verify" else self.service.attest(_nonce(request))
            conn.request, conn.pending = request, future
            conn.deadline = time.monotonic() + self.verify_timeout
            self._watch(conn)
            future.add_done_callback(lambda _f: self._completed(conn))
        else:
            raise BadRequest(f"unknown cmd {cmd!r}; expected status, stats, verify, debug, attest")

    def _completed(self, conn: _Conn) -> None:
        """From the worker's thread: hand the connection back to the loop."""
        with self._done_lock:
            self._done.append(conn)
        self._wake_w.send(b"\0")

    def _finish(self, conn: _Conn) -> None:
        """Answer a connection whose verify or attest is done (unless it was answered or closed since)."""
        future, request = conn.pending, conn.request
        if future is None or not future.done() or request is None or conn.sock not in self._conns:
            return
        conn.pending = conn.request = None
        try:
            reply = _future_reply(request, future, self.service.status())
        except SldError as err:
            reply = {"error": str(err)}
        except Exception as err:  # a bug in the work: the client hears of it, the loop goes on
            log.exception("control socket: %s failed", request.get("cmd"))
            reply = {"error": f"internal error: {type(err).__name__}"}
        self._reply(conn, reply)

    def _expire(self, conn: _Conn) -> None:
        """Past its deadline: a request still in the works is answered with why, the daemon's state and exit
        code 4 (a verification that stopped progressing, as ``sld status`` says); anything else is closed."""
        if conn.pending is not None and not conn.outbox:
            conn.pending = conn.request = None
            status = self.service.status()
            self._reply(conn, {"state": status.state, "exit_code": 4, "error": f"no answer within "
                               f"{self.verify_timeout:g} s ({status.error or 'still working'})"}, last=True)
        else:
            self._close(conn)

    # --- replies and registration ------------------------------------------------------------------

    def _reply(self, conn: _Conn, reply: Mapping[str, Any] | bytes, last: bool = False) -> None:
        from sld.report import jsonable

        conn.outbox += reply if isinstance(reply, bytes) else json.dumps(jsonable(reply)).encode() + b"\n"
        conn.last = conn.last or last
        conn.deadline = time.monotonic() + REQUEST_TIMEOUT
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbox)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client went away without its answer: nothing to tell it
            self._close(conn)
            return
        del conn.outbox[:sent]
        if conn.outbox:
            self._watch(conn)
        elif conn.last:
            conn.draining = True
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:  # gone already
                self._close(conn)
                return
            self._watch(conn)
        else:
            self._serve(conn)

    def _watch(self, conn: _Conn) -> None:
        """Register for what the connection waits for: to write its answer, to read, or nothing."""
        want = (selectors.EVENT_WRITE if conn.outbox else 0 if conn.pending is not None else selectors.EVENT_READ)
        if want == conn.events:
            return
        if conn.events and want:
            self._selector.modify(conn.sock, want)
        elif want:
            self._selector.register(conn.sock, want)
        else:
            self._selector.unregister(conn.sock)
        conn.events = want

    def _close(self, conn: _Conn) -> None:
        if self._conns.pop(conn.sock, None) is None:
            return
        if conn.events:
            self._selector.unregister(conn.sock)
        conn.sock.close()


def _recv(sock: socket.socket, size: int) -> bytes | None:
    """What the socket holds (b'' at EOF or reset), or None when it holds nothing yet."""
    try:
        return sock.recv(size)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


def _future_reply(request: Mapping[str, Any], future: Future[Any], status: DaemonStatus) -> Mapping[str, Any] | bytes:
    """The answer to a verify or attest once its Future is done; an SldError from it becomes the error reply."""
    from sld.report import verdict_json, verdict_text

    result = future.result()  # raises what the work raised: SldError is answered, anything else is logged
    if request.get("cmd") == "attest":  # sld.evidence.build lays evidence out in JSON values already
        return json.dumps(result).encode() + b"\n"
    if result is None:
        return {"state": status.state, "error": status.error, "exit_code": status.exit_code}
    render = request.get("render")
    if render in ("json", "text"):
        body = verdict_json(result) if render == "json" else verdict_text(result, request.get("colour") is True)
        return b"%d\n%s\n" % (result.exit_code, body.encode())
    return {"state": status.state, "verdict": json.loads(verdict_json(result)), "exit_code": result.exit_code}


def _debug(categories: Any) -> list[str]:
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise BadRequest("bad request: categories must be a list of names")
    chosen = [c for c in categories if c in journal.CATEGORIES]
    journal.set_debug(chosen)
    journal.log.info("debug categories now: %s", ", ".join(chosen) or "none")
    return chosen


def _nonce(request: Mapping[str, Any]) -> bytes:
    try:
        return bytes.fromhex(request["nonce"])
    except (KeyError, TypeError, ValueError):
        raise BadRequest("bad request: nonce must be hex digits") from None


def _groups(pid: int, uid: int, gid: int) -> set[int]:
    """The peer's supplementary groups: /proc/PID/status (what the process holds), else the user database's."""
    try:
        for line in open(f"/proc/{pid}/status", encoding="ascii").read().splitlines():  # noqa: SIM115
            if line.startswith("Groups:"):
                return {int(g) for g in line.split()[1:]}
    except (OSError, ValueError):
        pass
    try:
        import pwd

        return set(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except KeyError:
        return set()


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the socket at ``path``, None when nothing or not a socket is there."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISSOCK(st.st_mode) else None


def _clear(path: str) -> None:
    """Remove a stale socket left at ``path``; anything else there is refused, never deleted."""
    if not os.path.lexists(path):
        return
    if _identity(path) is None:
        raise ConfigError(f"{path} exists and is not a socket: refusing to remove it", key="control.socket")
    if _reachable(path):
        raise ConfigError(f"another sld daemon answers on {path}", key="control.socket")
    os.unlink(path)


def serve(service: Service, path: str, group: str = "", verify_timeout: float = 30.0) -> ControlServer:
    """Bind ``path`` (mode 0600, or 0660 with ``group``) and serve in a thread."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    _clear(path)
    try:
        gid = grp.getgrnam(group).gr_gid if group else None
    except KeyError:
        raise ConfigError(f"no such group {group!r}", key="control.group") from None
    old = os.umask(0o117 if gid is not None else 0o177)
    try:
        server = ControlServer(path, service, gid, verify_timeout)
    finally:
        os.umask(old)
    if gid is not None:
        try:
            os.chown(path, 0, gid)
        except OSError as err:
            server.server_close()
            raise ConfigError(f"cannot give {path} to group {group}: {err.strerror}", key="control.group") from None
    server.start()
    return server


def _reachable(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def request(path: str, obj: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """One JSON request to a running daemon (``sld status``), over sld.client's connection."""
    from sld.client import ask

    try:
        answer: dict[str, Any] = json.loads(ask(path, json.dumps(obj).encode() + b"\n", timeout))
    except PermissionError:
        raise AccessDenied(f"permission denied: {path} serves root and the [control] group only") from None
    except OSError as err:
        raise SourceError(f"no sld daemon answers: {err.strerror or err}", source=path) from None
    except ValueError:
        raise SourceError("the daemon's answer is not JSON", source=path) from None
    return answer


class AccessDenied(SldError):
    """The control socket refused us (file mode, peer credentials): a usage problem, exit 2."""

    exit_code = 2
