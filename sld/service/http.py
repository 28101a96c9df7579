"""The metrics HTTP listener: prometheus-client's WSGI app behind sld's own bounded server.

Kept apart from the collector (``sld.service.metrics``): the collector says *what* is exported, this
module says *who may ask and how*. Only ``exposition.make_wsgi_app`` is taken from prometheus-client
(present in Debian 12's 0.16, whose ``start_http_server`` has no TLS at all), so TLS, client
certificates, bcrypt users and the address allow-list do not depend on the client library's version.

No client can stop a scrape (issue 17): the TLS handshake runs in the connection's own thread under a
timeout, never inside ``accept()``; a listener holds at most ``MAX_CONNECTIONS`` connections, and when
it is full the oldest one that has not yet sent a request is dropped for the newcomer; every read and
write has ``IO_TIMEOUT`` and a whole connection ``DEADLINE``; descriptors beyond that stay free for
verification. A client that goes away is the client's business: a debug line, never a traceback.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import ipaddress
import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, cast
from wsgiref import simple_server

from prometheus_client import CollectorRegistry, exposition

from sld.config import MetricsConfig
from sld.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger("sld.metrics")

BACKLOG = 256  # socketserver's 5 resets connections when a fleet's scrapers arrive together
MAX_CONNECTIONS = 64
IO_TIMEOUT = 5.0  # seconds for the handshake and for each read or write
DEADLINE = 15.0  # seconds from accept to the last byte of the answer
ACCEPT_PAUSE = 0.1  # after EMFILE: the listener stays readable, so pause rather than spin
AUTH_CACHE = 64  # credentials that passed bcrypt (~50 ms each at cost 10), as exporter-toolkit caches them

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    accepted: float
    answering: bool = False


def _cut(sock: socket.socket) -> None:
    """Wake the thread blocked on ``sock`` (its read returns EOF); the plain socket's shutdown, so a TLS
    socket's state is left to the thread that owns it."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Connections:
    """The connections a listener holds: a bounded set, oldest-idle evicted first when it is full."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[int, _Connection] = {}
        self._lock = threading.Lock()

    def admit(self, sock: socket.socket) -> _Connection | None:
        """A slot for ``sock``, made by evicting the oldest connection still waiting for its request;
        None when every slot is answering a request."""
        with self._lock:
            if len(self._open) >= self.limit and not self._evict_waiting():
                return None
            conn = _Connection(sock, time.monotonic())
            self._open[sock.fileno()] = conn
            return conn

    def _evict_waiting(self) -> bool:
        waiting = [c for c in self._open.values() if not c.answering]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c.accepted)
        del self._open[oldest.sock.fileno()]
        _cut(oldest.sock)
        return True

    def evict_waiting(self) -> None:
        """Make room when out of file descriptors: the oldest connection still waiting for its request goes."""
        with self._lock:
            self._evict_waiting()

    def wrap(self, conn: _Connection, context: ssl.SSLContext) -> ssl.SSLSocket:
        """The TLS socket for ``conn`` (no handshake yet), swapped in under the lock so an eviction
        never cuts a socket object that no longer owns the descriptor."""
        with self._lock:
            tls = context.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False)
            conn.sock = tls
            return tls

    def answering(self, sock: socket.socket) -> None:
        """Mark the connection whose request arrived: answered connections are never evicted, only expired."""
        with self._lock:
            if (conn := self._open.get(sock.fileno())) is not None:
                conn.answering = True

    def drop(self, conn: _Connection) -> None:
        """Forget a finished connection, unless its descriptor is already another connection's."""
        with self._lock:
            if self._open.get(conn.sock.fileno()) is conn:
                del self._open[conn.sock.fileno()]

    def expire(self, before: float) -> None:
        """Cut every connection accepted before ``before`` (slow or stalled clients, any phase)."""
        with self._lock:
            for conn in [c for c in self._open.values() if c.accepted < before]:
                _cut(conn.sock)

    def cut_all(self) -> None:
        """Cut every open connection at shutdown, so no client thread keeps serving a stopped listener."""
        with self._lock:
            for conn in self._open.values():
                _cut(conn.sock)


class _Answer(simple_server.ServerHandler):
    """wsgiref's response writer, with a client that stalls or leaves logged as what it is."""

    def log_exception(self, exc_info: Any) -> None:
        """A client that left mid-answer is routine (debug); a failing WSGI app is an error worth journaling."""
        if isinstance(exc_info[1], OSError):
            log.debug("metrics client went away while answered: %s", exc_info[1])
        else:
            log.error("metrics app failed", exc_info=exc_info)


class _Handler(simple_server.WSGIRequestHandler):
    """One request per connection (HTTP/1.0, as wsgiref serves it); marks the connection as answering
    once its request has arrived, so only idle connections are ever evicted."""

    server: _Server
    timeout = IO_TIMEOUT

    def handle(self) -> None:
        """wsgiref's request handling with the request line bounded (414 past 64 KiB, as http.server does)
        and the connection marked as answering once its request has arrived.
        """
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        self.server.connections.answering(self.connection)
        answer = _Answer(self.rfile, cast(IO[bytes], self.wfile), self.get_stderr(), self.get_environ(),
                         multithread=True)
        answer.request_handler = self  # type: ignore[attr-defined]  # wsgiref's hook for log_request
        answer.run(self.server.app)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """Requests are not journaled: a scrape every 15 s per Prometheus would drown the real events."""


class _Server(simple_server.WSGIServer):
    """A WSGI server with a thread per admitted connection, the TLS handshake in that thread, an
    address allow-list and bounded connections."""

    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], app: WSGIApplication, *, tls: ssl.SSLContext | None,
                 allow: tuple[Network, ...], limit: int = MAX_CONNECTIONS) -> None:
        self.app = app
        self.tls = tls
        self.allow = allow
        self.connections = _Connections(limit)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind as http.server does, without its reverse lookup of the listen address (``socket.getfqdn``):
        a resolver call at every start that can stall on a broken DNS, and the idna codec (with
        unicodedata) kept in the daemon's memory for it; SERVER_NAME is the configured address."""
        socketserver.TCPServer.server_bind(self)
        host, self.server_port = self.server_address[:2]
        self.server_name = str(host)
        self.setup_environ()

    def get_request(self) -> tuple[socket.socket, Any]:
        """accept(), evicting an idle client on EMFILE/ENFILE so a connection flood cannot stop scrapes."""
        try:
            return super().get_request()
        except OSError as err:
            if err.errno in (errno.EMFILE, errno.ENFILE):
                log.warning("metrics listener: out of file descriptors; dropping an idle client")
                self.connections.evict_waiting()
                time.sleep(ACCEPT_PAUSE)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        """Admission: the ``[metrics] allow`` list first, then the connection bound; a thread per admitted client."""
        if not allowed(client_address[0], self.allow):
            log.debug("metrics client %s is outside [metrics] allow: refused", client_address[0])
            self.shutdown_request(request)
            return
        conn = self.connections.admit(request)
        if conn is None:
            log.debug("metrics listener full (%d answering): refused %s", self.connections.limit, client_address[0])
            self.shutdown_request(request)
            return
        threading.Thread(target=self._serve_connection, args=(conn, client_address), name="metrics-client",
                         daemon=True).start()

    def _serve_connection(self, conn: _Connection, client_address: Any) -> None:
        try:
            conn.sock.settimeout(IO_TIMEOUT)
            if self.tls is not None:
                self.connections.wrap(conn, self.tls).do_handshake()
            self.finish_request(conn.sock, client_address)
        except OSError as err:  # resets, timeouts, failed handshakes (ssl.SSLError is an OSError)
            log.debug("metrics client %s: %s", client_address[0], err)
        except Exception:
            log.exception("metrics request from %s failed", client_address[0])
        finally:
            self.connections.drop(conn)
            self.shutdown_request(conn.sock)

    def service_actions(self) -> None:
        """Called by ``serve_forever`` every poll interval: the per-connection deadline."""
        self.connections.expire(time.monotonic() - DEADLINE)

    def server_close(self) -> None:
        """Cut client connections before closing the listener."""
        self.connections.cut_all()
        super().server_close()


class _Server6(_Server):
    """The same server on an IPv6 address: the family is a class attribute in socketserver, so each
    family is its own subclass rather than a class attribute changed for the whole process."""

    address_family = socket.AF_INET6


def allowed(address: str, networks: Iterable[Network]) -> bool:
    """Whether a client address is in the allow-list (empty: everyone the unit's ``IPAddressAllow=``,
    systemd.resource-control(5), lets in).
    IPv4 clients of an IPv6 listener arrive as ::ffff:a.b.c.d and are matched as IPv4."""
    networks = tuple(networks)
    if not networks:
        return True
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def tls_context(m: MetricsConfig) -> ssl.SSLContext | None:
    """TLS 1.2+ with the configured certificate; with ``client_ca``, a client certificate signed by it is
    required (exporter-toolkit's RequireAndVerifyClientCert)."""
    if not m.certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(m.certfile, m.keyfile)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"cannot load {m.certfile} / {m.keyfile}: {err}", key="metrics.certfile") from None
    if m.client_ca:
        try:
            context.load_verify_locations(cafile=m.client_ca)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"cannot load {m.client_ca}: {err}", key="metrics.client_ca") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _basic_auth(app: Any, users: dict[str, str]) -> Any:
    """Require HTTP basic auth against bcrypt hashes (RFC 7617; the user name and password are UTF-8)."""
    from sld.service import passwords

    passed: set[bytes] = set()

    def authorized(header: str) -> bool:
        scheme, _, token = header.partition(" ")
        try:
            credentials = base64.b64decode(token, validate=True) if scheme.lower() == "basic" else b""
            name, colon, password = credentials.partition(b":")
            hashed = users.get(name.decode("utf-8")) if colon else None
        except (ValueError, UnicodeDecodeError):
            return False
        if hashed is None:
            return False
        key = hashlib.sha256(credentials + b"\0" + hashed.encode()).digest()
        if key in passed:
            return True
        if not passwords.check(password, hashed):
            return False
        if len(passed) >= AUTH_CACHE:
            passed.clear()
        passed.add(key)
        return True

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        if authorized(environ.get("HTTP_AUTHORIZATION", "")):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="sld", charset="UTF-8"'),
                                            ("Content-Type", "text/plain")])
        return [b"authentication required\n"]

    return guarded


def serve(registry: CollectorRegistry, m: MetricsConfig) -> _Server:
    """Bind ``[metrics] listen:port`` and serve ``registry`` in a thread; every TLS, CA and password
    problem is a ConfigError here, at start-up, never a failure at the first scrape."""
    app = exposition.make_wsgi_app(registry)
    if m.basic_auth_users:
        from sld.service import passwords  # here: ctypes.util (and subprocess) only when users are configured

        passwords.require()
        app = _basic_auth(app, dict(m.basic_auth_users))
    server_class = _Server6 if ":" in m.listen else _Server
    allow = tuple(ipaddress.ip_network(a, strict=False) for a in m.allow)
    server = server_class((m.listen, m.port), app, tls=tls_context(m), allow=allow)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
