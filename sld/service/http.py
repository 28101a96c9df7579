"""The metrics HTTP listener: prometheus-client's WSGI app behind sld's own server (TLS, basic auth).

Kept apart from the collector (``sld.service.metrics``): the collector says *what* is exported, this
module says *who may ask and how*. Only ``exposition.make_wsgi_app`` and ``ThreadingWSGIServer`` are
used from prometheus-client, both present in Debian 12's 0.16, so TLS does not depend on the
client library's version.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import ssl
import threading
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, exposition

from sld.config import MetricsConfig

BACKLOG = 256


class _Server(exposition.ThreadingWSGIServer):
    """prometheus-client's threading WSGI server with a listen backlog for bursts of scrapers
    (socketserver's default of 5 resets connections when a fleet's scrapers arrive together)."""

    request_queue_size = BACKLOG


class _Server6(_Server):
    """The same server on an IPv6 address: the family is a class attribute in socketserver, so each
    family is its own subclass rather than a class attribute changed for the whole process."""

    address_family = socket.AF_INET6


def _basic_auth(app: Any, user: str, password_sha256: str) -> Any:
    """Require HTTP basic auth; the password is configured as its SHA-256 so the file holds no secret."""
    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        header = environ.get("HTTP_AUTHORIZATION", "")
        ok = False
        if header.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                name, password = "", ""
            digest = hashlib.sha256(password.encode()).hexdigest()
            ok = hmac.compare_digest(name, user) & hmac.compare_digest(digest, password_sha256.lower())
        if ok:
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="sld"'), ("Content-Type", "text/plain")])
        return [b"authentication required\n"]

    return guarded


def serve(registry: CollectorRegistry, m: MetricsConfig) -> Any:
    """prometheus-client's WSGI app and server, with TLS (cert/key) and basic auth when configured."""
    app = exposition.make_wsgi_app(registry)
    if m.basic_auth_user:
        app = _basic_auth(app, m.basic_auth_user, m.basic_auth_password_sha256)
    server_class = _Server6 if ":" in m.listen else _Server
    server = make_server(m.listen, m.port, app, server_class, handler_class=exposition._SilentHandler)
    if m.certfile and m.keyfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(m.certfile, m.keyfile)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
