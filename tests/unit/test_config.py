"""Configuration: the shipped file is every default; bad keys, types and values are named."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sld.config import Config, from_dict, load
from sld.errors import ConfigError

SHIPPED = Path(__file__).parents[2] / "conf" / "sld.toml"


def test_shipped_file_uncommented_is_exactly_the_defaults() -> None:
    text = SHIPPED.read_text()
    uncommented = re.sub(r"^#(\w+ =.*)$", r"\1", text, flags=re.M)
    uncommented = re.sub(r"^(\w+) =\s*$", "", uncommented, flags=re.M)  # keys whose default is "unset"
    config = from_dict(tomllib.loads(uncommented))
    assert config == Config()
    assert load(str(SHIPPED)) == Config(path=str(SHIPPED))


@pytest.mark.parametrize(("text", "key", "message"), [
    ("[verify]\nintervall = 3", "verify.intervall", "unknown key"),
    ("[verfiy]\nmode = 'auto'", "verfiy", "unknown section"),
    ("[verify]\ninterval = 'soon'", "verify.interval", "expected float"),
    ("[verify]\nmode = 'sometimes'", "verify.mode", "not one of"),
    ("[metrics]\nport = 70000", "metrics.port", "outside"),
    ("[quarantine]\non = ['failed', 'bored']", "quarantine.on", "not one of"),
    ("[tpm]\nlocality = true", "tpm.locality", "expected int"),
])
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, key: str, message: str) -> None:
    path = tmp_path / "sld.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(str(path))
    assert err.value.key == key and err.value.file == str(path) and message in str(err.value)


def test_daemon_with_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "sld.toml"
    path.write_text("[verify]\ninterval = 0\n")
    run = subprocess.run([sys.executable, "-m", "sld.cli", "daemon", "--config", str(path)], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 2 and "verify.interval" in run.stderr and "Traceback" not in run.stderr


def test_journal_catalog_explains_every_message_id() -> None:
    from sld.service.journal import MESSAGE_IDS

    catalog = (SHIPPED.parent / "sld.catalog").read_text()
    ids = re.findall(r"^-- ([0-9a-f]{32})$", catalog, flags=re.M)
    assert sorted(ids) == sorted(MESSAGE_IDS.values())


def test_every_journal_kind_has_one_message_id() -> None:
    """The journal's kinds are the vocabulary's (each verdict, each other record): a kind with no id would
    be a KeyError in the daemon, an id with no kind a record nobody writes."""
    from sld.service.journal import MESSAGE_IDS
    from sld.vocab import JournalEvent, Result

    assert set(MESSAGE_IDS) == {*Result, *JournalEvent}
    assert len(set(MESSAGE_IDS.values())) == len(MESSAGE_IDS)


@pytest.mark.skipif(shutil.which("journalctl") is None, reason="journalctl is absent")
def test_journalctl_compiles_the_catalog(tmp_path: Path) -> None:
    from sld.service.journal import MESSAGE_IDS

    target = tmp_path / "usr/lib/systemd/catalog"
    target.mkdir(parents=True)
    (target / "sld.catalog").write_text((SHIPPED.parent / "sld.catalog").read_text())
    (tmp_path / "var/lib/systemd/catalog").mkdir(parents=True)
    subprocess.run(["journalctl", f"--root={tmp_path}", "--update-catalog"], check=True, capture_output=True)
    listed = subprocess.run(["journalctl", f"--root={tmp_path}", "--list-catalog"], capture_output=True, text=True)
    found = {line.split()[0].replace("-", "") for line in listed.stdout.splitlines() if line.strip()}
    assert set(MESSAGE_IDS.values()) <= found


def test_config_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "sld.toml"
    path.write_bytes(b"[verify]\nmode = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(str(path))


def test_daemon_refuses_a_bad_quarantine_allow_expression_with_libpcaps_message(tmp_path: Path) -> None:
    path = tmp_path / "sld.toml"
    path.write_text(f'[quarantine]\nenabled = true\ninterfaces = ["eth0"]\nallow = "tcp prot 22"\n'
                    f'[metrics]\nenabled = false\n[control]\nsocket = "{tmp_path / "c.sock"}"\n')
    run = subprocess.run([sys.executable, "-m", "sld.cli", "daemon", "--config", str(path)], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 2 and "quarantine.allow" in run.stderr and "syntax error" in run.stderr
