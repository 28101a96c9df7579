"""Configuration refused at start or reload (issue 17): ``sld daemon`` exits 2 naming the key for
everything a file shows to be wrong (sld.config) or this machine cannot do (sld.service.preflight),
and a SIGHUP with such a file keeps the daemon and its old configuration."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sld.config import CHOICES, Config, loads
from sld.errors import ConfigError
from sld.service import preflight
from sld.vocab import LogCategory, Mode, choices

DEEP = "[verify]\nmode = " + "[" * 2000 + "]" * 2000 + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_config(tmp_path: Path, **sections: dict[str, object]) -> Path:
    """A daemon that starts without a platform or TPM (it runs degraded): only the keys under test vary."""
    base: dict[str, dict[str, object]] = {
        "source": {"spec": f"image:{tmp_path / 'none.img'}"}, "tpm": {"tcti": "swtpm:host=127.0.0.1,port=9"},
        "metrics": {"port": free_port()}, "control": {"socket": str(tmp_path / "control.sock")}}
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    conf = tmp_path / "sld.toml"
    conf.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
                            for name, values in base.items()))
    return conf


def start(conf: Path, *wrapper: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*wrapper, sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("extra", "key"), [
    ("[metrics]\ntextfile = '/nonexistent-dir/sld.prom'\n", "metrics.textfile"),
    ("[metrics]\ncertfile = '/etc/ssl/certs/ca-certificates.crt'\n", "metrics.keyfile"),
    ("[metrics]\nkeyfile = '/etc/ssl/private/x.key'\n", "metrics.certfile"),
    ("[metrics]\nclient_ca = '/etc/ssl/certs/ca-certificates.crt'\n", "metrics.client_ca"),
    ("[control]\ngroup = 'nosuchgroup'\n", "control.group"),
    ("[quarantine]\nenabled = true\ninterfaces = []\n", "quarantine.interfaces"),
    ("[verify]\npolicy = '/nonexistent/policy.toml'\n", "verify.policy"),
])
def test_a_config_that_cannot_work_is_refused_at_load(extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        loads(extra.encode(), "sld.toml")
    assert err.value.key == key and err.value.file == "sld.toml"


def test_2000_deep_nesting_is_a_config_error_not_a_recursion_error() -> None:
    with pytest.raises(ConfigError, match="nested too deeply"):
        loads(DEEP.encode(), "sld.toml")


def test_config_choices_are_the_vocabulary() -> None:
    assert CHOICES["verify.mode"] == choices(Mode) and CHOICES["log.debug"] == choices(LogCategory)
    with pytest.raises(ConfigError, match="not one of auto, validate, perform"):
        loads(b"[verify]\nmode = 'sometimes'\n")


@pytest.mark.parametrize(("section", "value", "key"), [
    ("source", {"spec": "image:"}, "source.spec"),
    ("source", {"spec": "devmem:/dev/kmem"}, "source.spec"),
    ("source", {"spec": "usb"}, "source.spec"),
    ("tpm", {"tcti": "swtmp:host=127.0.0.1,port=2321"}, "tpm.tcti"),
    ("tpm", {"tcti": "device /dev/tpmrm0"}, "tpm.tcti"),
    ("tpm", {"tcti": ""}, "tpm.tcti"),
])
def test_preflight_names_the_key(section: str, value: dict[str, str], key: str) -> None:
    config = loads(f"[{section}]\n{''.join(f'{k} = {v!r}' for k, v in value.items())}\n".encode())
    with pytest.raises(ConfigError) as err:
        preflight.check(config)
    assert err.value.key == key


def test_preflight_accepts_the_defaults_and_the_simulator_tcti() -> None:
    preflight.check(Config())
    preflight.check(loads(b"[tpm]\ntcti = 'swtpm:host=127.0.0.1,port=2321'\n[source]\nspec = 'image:/x'\n"))


@pytest.mark.parametrize("policy", ["pcrs = 5\n", "events = [5]\n", "[pcrs.sha256]\n17 = 'zz'\n", "nope = 1\n",
                                    "x = " + "[" * 2000 + "]" * 2000 + "\n"])
def test_a_policy_that_does_not_parse_is_refused_at_start(tmp_path: Path, policy: str) -> None:
    (tmp_path / "policy.toml").write_text(policy)
    run = start(daemon_config(tmp_path, verify={"policy": str(tmp_path / "policy.toml")}))
    assert run.returncode == 2 and "verify.policy" in run.stderr and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize(("sections", "key"), [
    ({"metrics": {"certfile": "/etc/ssl/certs/ca-certificates.crt"}}, "metrics.keyfile"),
    ({"control": {"group": "nosuchgroup"}}, "control.group"),
    ({"source": {"spec": "imgae:/var/tmp/sld.img"}}, "source.spec"),
    ({"tpm": {"tcti": "swtmp:port=2321"}}, "tpm.tcti"),
])
def test_daemon_exits_2_naming_the_key(tmp_path: Path, sections: dict[str, dict[str, object]], key: str) -> None:
    run = start(daemon_config(tmp_path, **sections))
    assert run.returncode == 2 and key in run.stderr and "Traceback" not in run.stderr, run.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="dropping CAP_CHOWN needs root and setpriv (util-linux)")
def test_control_group_without_cap_chown_is_refused_at_start(tmp_path: Path) -> None:
    """As under units/sld.service, whose CapabilityBoundingSet= has no CAP_CHOWN."""
    run = start(daemon_config(tmp_path, control={"group": "nogroup"}), "setpriv", "--bounding-set=-chown")
    assert run.returncode == 2 and "control.group" in run.stderr and "CAP_CHOWN" in run.stderr, run.stderr
    assert "SupplementaryGroups=nogroup" in run.stderr
    assert not (tmp_path / "control.sock").exists()


@contextlib.contextmanager
def running(conf: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """The daemon after READY=1 (a real NOTIFY_SOCKET: signal handlers are installed before READY); its
    stderr lands in the list once it has stopped."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(20)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
    proc = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)],
                            stderr=subprocess.PIPE, text=True, env=env)
    stderr: list[str] = []
    try:
        while b"READY=1" not in notify.recv(4096):
            pass
        yield proc, stderr
    finally:
        proc.terminate()
        stderr.append(proc.communicate(timeout=20)[1])
        notify.close()


def reload_with(edit: Callable[[str], str], tmp_path: Path) -> str:
    """Start the daemon, rewrite its file with ``edit``, SIGHUP, check it lives on, stop: its stderr."""
    conf = daemon_config(tmp_path)
    with running(conf, tmp_path) as (proc, stderr):
        conf.write_text(edit(conf.read_text()))
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert proc.poll() is None
    return stderr[0]


def test_sighup_with_2000_deep_nesting_is_refused_and_the_daemon_keeps_running(tmp_path: Path) -> None:
    err = reload_with(lambda text: text + DEEP, tmp_path)
    assert "config reload refused" in err and "nested too deeply" in err and "Traceback" not in err, err


def test_a_reload_that_changes_metrics_says_the_listener_changes_at_restart(tmp_path: Path) -> None:
    err = reload_with(lambda text: text.replace("[metrics]\n", '[metrics]\nallow = ["10.0.0.0/8"]\n'), tmp_path)
    assert "[metrics] changed: the listener" in err and "configuration reloaded" in err, err
