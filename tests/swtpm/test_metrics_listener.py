"""The daemon's metrics listener under hostile clients (issue 17), with a real simulated platform: 1,100
idle TCP connections to the TLS port (none starts its handshake) leave scrapes, ``sld status`` and
verification itself working, and leave no traceback."""

from __future__ import annotations

import resource
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sld.errors import SldError
from sld.service.control import request
from sld.sim.swtpm import free_port_pair
from tests.swtpm.conftest import Sim
from tests.swtpm.test_daemon import config
from tests.tls import make_pki


def test_1100_idle_tls_connections_do_not_stop_scrapes_status_or_verification(sim: Sim, tmp_path: Path) -> None:
    sim.up("clean")
    pki = make_pki(tmp_path, "127.0.0.1")
    port = free_port_pair()
    conf = tmp_path / "sld.toml"
    conf.write_text(config(sim, port).replace("[metrics]\n", f'[metrics]\ncertfile = "{pki.cert}"\n'
                                              f'keyfile = "{pki.key}"\n'))
    sock = str(sim.root / "control.sock")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))  # the test holds the 1,100 clients
    proc = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)],
                            stderr=subprocess.PIPE, text=True)
    idle: list[socket.socket] = []
    context = ssl.create_default_context(cafile=str(pki.ca))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if request(sock, {"cmd": "status"})["state"] == "running":
                    break
            except SldError:  # not listening yet
                time.sleep(0.1)
        for _ in range(1100):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        start = time.monotonic()
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=context, timeout=5) as r:
            assert r.status == 200 and "sld_launch_verified 1.0" in r.read().decode()
        assert time.monotonic() - start < 3
        assert request(sock, {"cmd": "status"})["state"] == "running"
        answer = request(sock, {"cmd": "verify"})
        assert answer["exit_code"] == 0 and answer["verdict"]["result"] == "verified"
        held = len(list(Path(f"/proc/{proc.pid}/fd").iterdir()))
        assert held < 200, held  # 64 metrics connections at most, not 1,100
    finally:
        for s in idle:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        proc.terminate()
        err = proc.communicate(timeout=20)[1]
    assert "Traceback" not in err and "Too many open files" not in err, err
