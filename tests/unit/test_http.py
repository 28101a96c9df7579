"""The metrics listener on loopback, in-process: real sockets, real TLS, real bcrypt (libxcrypt).

Each hardening item of issue 17 (listeners) and the fleet-scraping items of issue 16 has a test here;
the cross-namespace scrape with a client certificate is in tests/netns/test_metrics_remote.py."""

from __future__ import annotations

import base64
import contextlib
import logging
import resource
import select
import socket
import ssl
import struct
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge

from sld.config import Config, MetricsConfig, loads
from sld.errors import ConfigError
from sld.service import http
from tests.tls import Pki, make_pki

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # only to make hashes, as the operator's python3 -c one-liner does

HASH = crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))  # cost 4: fast tests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "127.0.0.1", "::1")


@contextlib.contextmanager
def listening(**settings: object) -> Iterator[MetricsConfig]:
    registry = CollectorRegistry()
    Gauge("sld_test_up", "a metric to scrape", registry=registry).set(1)
    m = MetricsConfig(port=free_port(), **settings)  # type: ignore[arg-type]
    server = http.serve(registry, m)
    try:
        yield m
    finally:
        server.shutdown()
        server.server_close()


def scrape(m: MetricsConfig, *, pki: Pki | None = None, client: bool = True, auth: bytes | None = None,
           timeout: float = 5.0) -> tuple[int, str]:
    context = None
    if pki is not None:
        context = ssl.create_default_context(cafile=str(pki.ca))
        if client:
            context.load_cert_chain(pki.client_cert, pki.client_key)
    host = f"[{m.listen}]" if ":" in m.listen else m.listen
    url = f"{'https' if context else 'http'}://{host}:{m.port}/metrics"
    headers = {"Authorization": "Basic " + base64.b64encode(auth).decode()} if auth is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=context,
                                    timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def test_one_idle_tcp_connection_does_not_freeze_tls_scrapes(pki: Pki) -> None:
    with listening(certfile=str(pki.cert), keyfile=str(pki.key)) as m:
        idle = socket.create_connection((m.listen, m.port))  # never starts its handshake
        start = time.monotonic()
        status, text = scrape(m, pki=pki)
        assert status == 200 and "sld_test_up 1.0" in text
        assert time.monotonic() - start < 2
        idle.close()


def test_1100_idle_connections_then_a_scrape_still_answers(pki: Pki) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))  # this process holds the clients too
    idle = []
    try:
        with listening(certfile=str(pki.cert), keyfile=str(pki.key)) as m:
            for _ in range(1100):
                idle.append(socket.create_connection((m.listen, m.port), timeout=5))
            start = time.monotonic()
            status, text = scrape(m, pki=pki)
            assert status == 200 and "sld_test_up 1.0" in text
            assert time.monotonic() - start < 3
            held = len(list(Path("/proc/self/fd").iterdir()))
            assert held < 1100 + http.MAX_CONNECTIONS + 64  # the server kept at most its bound
    finally:
        for s in idle:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_slow_client_is_cut_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "DEADLINE", 1.0)
    with listening() as m:
        slow = socket.create_connection((m.listen, m.port), timeout=5)
        start = time.monotonic()
        while time.monotonic() - start < 6:  # one byte at a time, never a full request line
            try:
                slow.send(b"G")
            except OSError:
                break
            if select.select([slow], [], [], 0.2)[0] and slow.recv(1) == b"":
                break
        assert 0.9 < time.monotonic() - start < 3
        slow.close()


def test_basic_auth_with_bcrypt_users_and_a_non_ascii_user_name(caplog: pytest.LogCaptureFixture) -> None:
    with listening(basic_auth_users={"prom": HASH}) as m:
        assert scrape(m)[0] == 401
        assert scrape(m, auth=b"prom:wrong")[0] == 401
        assert scrape(m, auth="prömetheus:s3cret".encode())[0] == 401
        assert scrape(m, auth=b"\xff\xfe:s3cret")[0] == 401  # not UTF-8
        assert scrape(m, auth=b"prom")[0] == 401  # no colon
        status, text = scrape(m, auth=b"prom:s3cret")
        assert status == 200 and "sld_test_up" in text
        assert scrape(m, auth=b"prom:s3cret")[0] == 200  # the second time from the cache
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_clients_that_leave_early_leave_no_traceback(pki: Pki, capfd: pytest.CaptureFixture[str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    def reset(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    for settings in ({}, {"certfile": str(pki.cert), "keyfile": str(pki.key)}):
        with listening(**settings) as m:
            for payload in (b"", b"GET /metr", b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02"):
                sock = socket.create_connection((m.listen, m.port))
                sock.sendall(payload)
                reset(sock)
            assert scrape(m, pki=pki if settings else None)[0] == 200
            time.sleep(0.3)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "Error" not in err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


def test_client_certificate_required_when_a_client_ca_is_set(pki: Pki) -> None:
    with listening(certfile=str(pki.cert), keyfile=str(pki.key), client_ca=str(pki.ca)) as m:
        assert scrape(m, pki=pki)[0] == 200
        with pytest.raises(OSError):  # TLS 1.3: the refusal arrives as an alert on the first read
            scrape(m, pki=pki, client=False)
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.load_cert_chain(pki.stranger_cert, pki.stranger_key)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"https://127.0.0.1:{m.port}/metrics", context=context, timeout=5)


def test_allow_list_refuses_other_addresses_before_any_byte() -> None:
    with listening(allow=("10.0.0.0/8",)) as m:
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            scrape(m)
    with listening(listen="::1", allow=("::1/128",)) as m:
        assert scrape(m)[0] == 200
    assert http.allowed("::ffff:10.1.2.3", (http.ipaddress.ip_network("10.0.0.0/8"),))


@pytest.mark.parametrize(("settings", "key"), [
    ({"certfile": "/nonexistent.pem", "keyfile": "/nonexistent.key"}, "metrics.certfile"),
])
def test_unusable_tls_files_are_config_errors_at_start(settings: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        http.serve(CollectorRegistry(), MetricsConfig(port=free_port(), **settings))
    assert err.value.key == key


def test_bad_client_ca_is_a_config_error_naming_it(pki: Pki) -> None:
    m = MetricsConfig(port=free_port(), certfile=str(pki.cert), keyfile=str(pki.key), client_ca=str(pki.key))
    with pytest.raises(ConfigError) as err:
        http.serve(CollectorRegistry(), m)
    assert err.value.key == "metrics.client_ca"


@pytest.mark.parametrize(("text", "key", "message"), [
    ('[metrics]\nbasic_auth_user = "prom"', "metrics.basic_auth_user", "htpasswd -nBC 10"),
    ('[metrics]\nbasic_auth_password_sha256 = "' + "0" * 64 + '"', "metrics.basic_auth_password_sha256",
     "bcrypt"),
    ('[metrics.basic_auth_users]\nprom = "' + "0" * 64 + '"', "metrics.basic_auth_users", "htpasswd -nBC 10"),
    ('[metrics]\nallow = ["10.0.0.0/33"]', "metrics.allow", "CIDR"),
])
def test_unsalted_hashes_and_bad_networks_are_refused_at_load(text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        loads(text.encode())
    assert err.value.key == key and message in str(err.value)


def test_bcrypt_users_load_from_a_toml_table() -> None:
    config = loads(f'[metrics.basic_auth_users]\nprom = "{HASH}"\n'.encode())
    assert config.metrics.basic_auth_users == {"prom": HASH} and config != Config()


DEBIAN_PYTHON = Path("/usr/bin/python3")
DEBIAN_CLIENT = Path("/usr/lib/python3/dist-packages/prometheus_client")


@pytest.mark.skipif(not DEBIAN_CLIENT.is_dir() or not DEBIAN_PYTHON.exists(),
                    reason="Debian 12's python3 with python3-prometheus-client (0.16) is not installed")
def test_debian_12_prometheus_client_serves_mtls_bcrypt_and_the_allow_list(pki: Pki) -> None:
    """The same listener under Debian's python3 and prometheus-client 0.16, whose start_http_server has
    no TLS: sld takes only make_wsgi_app from it, so mTLS, bcrypt and the allow-list work the same."""
    port = free_port()
    code = f"""
import importlib.metadata, socket, ssl, base64, urllib.request
from prometheus_client import CollectorRegistry, Gauge
from sld.config import MetricsConfig
from sld.service import http
version = importlib.metadata.version("prometheus_client")
assert version.startswith("0.16"), version
registry = CollectorRegistry()
Gauge("sld_test_up", "up", registry=registry).set(1)
m = MetricsConfig(port={port}, certfile={str(pki.cert)!r}, keyfile={str(pki.key)!r}, client_ca={str(pki.ca)!r},
                  basic_auth_users={{"prom": {HASH!r}}}, allow=("127.0.0.0/8",))
server = http.serve(registry, m)
def get(cert, auth):
    c = ssl.create_default_context(cafile={str(pki.ca)!r})
    if cert:
        c.load_cert_chain({str(pki.client_cert)!r}, {str(pki.client_key)!r})
    req = urllib.request.Request("https://127.0.0.1:{port}/metrics",
                                 headers={{"Authorization": "Basic " + base64.b64encode(auth).decode()}})
    try:
        with urllib.request.urlopen(req, context=c, timeout=5) as r:
            return str(r.status) + (" up" if b"sld_test_up 1.0" in r.read() else "")
    except urllib.error.HTTPError as err:
        return str(err.code)
    except OSError:
        return "refused"
print(get(True, b"prom:s3cret"), get(True, b"prom:wrong"), get(False, b"prom:s3cret"))
"""
    env = {"PYTHONPATH": str(Path(__file__).parents[2]), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([str(DEBIAN_PYTHON), "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["200", "up", "401", "refused"], run.stdout + run.stderr
