"""The control socket: JSON lines over a root-only Unix socket (peer credentials checked).

Requests: {"cmd": "status" | "stats" | "verify" | "debug", ...}; one JSON object answers each line.
``stats`` carries ``stats_version``, bumped whenever its shape changes. ``verify`` with ``"render":
"json" | "text"`` (sld.client) answers the exit code on a line, then the verdict as ``sld verify`` prints it.
"""

from __future__ import annotations

import grp
import json
import os
import socket
import socketserver
import struct
import threading
from typing import TYPE_CHECKING, Any

from sld.errors import SourceError

if TYPE_CHECKING:
    from sld.service.daemon import Daemon

STATS_VERSION = 1
MAX_LINE = 64 * 1024


def _peer(sock: socket.socket) -> tuple[int, int, int]:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)  # pid, uid, gid


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        _pid, uid, gid = _peer(self.request)
        if uid != 0 and (self.server.gid is None or gid != self.server.gid):
            self._send({"error": "permission denied: root (or the configured group) only"})
            return
        for raw in self.rfile:
            if len(raw) > MAX_LINE:
                self._send({"error": "request too long"})
                return
            try:
                self._send(self.server.answer(json.loads(raw)))
            except (ValueError, AttributeError) as err:
                self._send({"error": f"bad request: {err}"})

    def _send(self, reply: dict[str, Any] | bytes) -> None:
        from sld.report import jsonable

        self.wfile.write(reply if isinstance(reply, bytes) else json.dumps(jsonable(reply)).encode() + b"\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 refuses bursts of clients (EAGAIN on a Unix socket)

    def __init__(self, path: str, daemon: Daemon, gid: int | None) -> None:
        self.sld = daemon
        self.gid = gid
        super().__init__(path, _Handler)

    def answer(self, request: dict[str, Any]) -> dict[str, Any] | bytes:
        """One reply: a JSON object, or for ``verify`` with ``render`` (sld.client) the exit code on a line,
        then the verdict exactly as a local ``sld verify [--json]`` prints it (the client needs no JSON)."""
        from sld.report import verdict_json, verdict_text
        from sld.service import journal

        d = self.sld
        cmd = request.get("cmd")
        if cmd == "status":
            v = d.verdict
            degraded = d.state == "degraded" or v is None
            return {"state": d.state, "result": v.result if v else None,
                    "summary": d.stats["last_error"] if degraded else v.summary, "quarantined": d.quarantined}
        if cmd == "stats":
            return {"stats_version": STATS_VERSION, "state": d.state, **d.stats}
        if cmd == "verify":
            verdict = d.verify_now()
            if verdict is None:
                return {"state": d.state, "error": d.stats["last_error"]}
            render = request.get("render")
            if render in ("json", "text"):
                colour = request.get("colour") is True
                body = verdict_json(verdict) if render == "json" else verdict_text(verdict, colour)
                return b"%d\n%s\n" % (verdict.exit_code, body.encode())
            return {"state": d.state, "verdict": json.loads(verdict_json(verdict)), "exit_code": verdict.exit_code}
        if cmd == "debug":
            categories = [c for c in request.get("categories", []) if c in journal.CATEGORIES]
            journal.set_debug(categories)
            journal.log.info("debug categories now: %s", ", ".join(categories) or "none")
            return {"debug": categories}
        return {"error": f"unknown cmd {cmd!r}; expected status, stats, verify, debug"}


def serve(daemon: Daemon, path: str, group: str = "") -> _Server:
    """Bind ``path`` (mode 0600, or 0660 with ``group``) and serve in a thread."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    if os.path.exists(path):
        if _reachable(path):
            raise SourceError("another sld daemon answers on this control socket", source=path)
        os.unlink(path)
    gid = grp.getgrnam(group).gr_gid if group else None
    old = os.umask(0o117 if gid is not None else 0o177)
    try:
        server = _Server(path, daemon, gid)
    finally:
        os.umask(old)
    if gid is not None:
        os.chown(path, 0, gid)
    threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
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
        return json.loads(ask(path, json.dumps(obj).encode() + b"\n", timeout))
    except OSError as err:
        raise SourceError(f"no sld daemon answers: {err.strerror or err}", source=path) from None
