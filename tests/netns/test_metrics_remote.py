"""A fleet's Prometheus scraping sld from another host, played by network namespaces the test makes:
the installed ``sld daemon`` listens in one namespace with TLS, a client CA and an address
allow-list; a scraper with the client certificate in an allowed network gets the metrics, the same
scraper without a certificate and a scraper from an address outside ``[metrics] allow`` are refused.

The unit's ``IPAddressAllow=`` drop-in (units/sld.service.d/) is systemd's own enforcement, applied
to the daemon's cgroup; what sld enforces itself, and what this test proves, is ``[metrics] allow``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.net import namespaces, python_in, veth
from tests.tls import Pki, make_pki

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
              pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 is absent")]

SERVER, PROMETHEUS = "192.0.2.2", "192.0.2.1"  # the allowed network
SERVER_OUTSIDE, STRANGER = "198.51.100.2", "198.51.100.3"  # a network the allow-list leaves out
PORT = 39230


def scrape_from(ns: str, pki: Pki, address: str, *, cert: bool) -> str:
    """What a scraper in ``ns`` gets from https://address/metrics: the status line, or the error's type."""
    load = f"c.load_cert_chain({str(pki.client_cert)!r}, {str(pki.client_key)!r})\n" if cert else ""
    code = ("import ssl, time, urllib.request\n"
            f"c = ssl.create_default_context(cafile={str(pki.ca)!r})\n{load}"
            "for _ in range(100):\n"
            "    try:\n"
            f"        r = urllib.request.urlopen('https://{address}:{PORT}/metrics', context=c, timeout=5)\n"
            "        body = r.read().decode()\n"
            "        print(r.status, 'sld_build_info' in body); break\n"
            "    except OSError as err:\n"
            "        if isinstance(getattr(err, 'reason', err), ConnectionRefusedError):\n"
            "            time.sleep(0.1); continue\n"  # the daemon is not listening yet
            "        print(type(err).__name__, err); break\n")
    return python_in(ns, code).stdout.strip()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[dict[str, str], Pki]]:
    with namespaces("server", "prometheus", "stranger") as ns:
        veth(ns["prometheus"], "vA", PROMETHEUS, ns["server"], "vB", SERVER)
        veth(ns["stranger"], "vC", STRANGER, ns["server"], "vD", SERVER_OUTSIDE)
        pki = make_pki(tmp_path, SERVER, SERVER_OUTSIDE)
        conf = tmp_path / "sld.toml"
        conf.write_text(f"""
[source]
spec = "image:{tmp_path / 'no-platform.img'}"
[tpm]
tcti = "swtpm:host=127.0.0.1,port=9"
[metrics]
listen = "0.0.0.0"
port = {PORT}
certfile = "{pki.cert}"
keyfile = "{pki.key}"
client_ca = "{pki.ca}"
allow = ["192.0.2.0/24"]
[control]
socket = "{tmp_path / 'control.sock'}"
""")
        daemon = subprocess.Popen(["ip", "netns", "exec", ns["server"], str(Path(sys.executable).parent / "sld"),
                                   "daemon", "--config", str(conf)], stderr=subprocess.PIPE, text=True)
        try:
            yield ns, pki
        finally:
            daemon.terminate()
            err = daemon.communicate(timeout=20)[1]
            assert "Traceback" not in err


def test_scrape_over_mtls_from_another_namespace(fleet: tuple[dict[str, str], Pki]) -> None:
    ns, pki = fleet
    assert scrape_from(ns["prometheus"], pki, SERVER, cert=True) == "200 True"


def test_scrape_without_the_client_certificate_is_refused(fleet: tuple[dict[str, str], Pki]) -> None:
    ns, pki = fleet
    assert scrape_from(ns["prometheus"], pki, SERVER, cert=True) == "200 True"
    refused = scrape_from(ns["prometheus"], pki, SERVER, cert=False)
    assert refused.startswith(("SSLError", "URLError", "ConnectionResetError")), refused


def test_scrape_from_outside_the_allow_list_is_refused_even_with_the_certificate(
        fleet: tuple[dict[str, str], Pki]) -> None:
    ns, pki = fleet
    assert scrape_from(ns["prometheus"], pki, SERVER, cert=True) == "200 True"  # the daemon is up
    refused = scrape_from(ns["stranger"], pki, SERVER_OUTSIDE, cert=True)
    assert refused.startswith(("SSLError", "URLError", "ConnectionResetError", "RemoteDisconnected")), refused
