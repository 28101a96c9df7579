"""One test per tpm2-pytss release sld supports (sld.tss.SUPPORTED): the same checkout, run by the interpreter
that has that release, drives a real swtpm through every ESAPI call sld makes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.swtpm.conftest import Sim

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = "/usr/bin/python3"  # Debian 12's python3-tpm2-pytss (1.2.0) and python3-construct


def _has_binding(python: str) -> bool:
    probe = "import importlib.util as u; raise SystemExit(u.find_spec('tpm2_pytss') is None)"
    return os.path.exists(python) and subprocess.run([python, "-c", probe]).returncode == 0


INTERPRETERS = [
    pytest.param(sys.executable, "3.0.0", id="pypi-3.0.0"),
    pytest.param(DEBIAN_PYTHON, "1.2.0", id="debian-1.2.0", marks=pytest.mark.skipif(
        not _has_binding(DEBIAN_PYTHON), reason="Debian's python3-tpm2-pytss is not installed (apt-get install "
                                                "python3-tpm2-pytss python3-construct)")),
]


def _sld(python: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([python, "-m", "sld.cli", *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(("python", "version"), INTERPRETERS)
def test_each_supported_release_verifies_and_extends(sim: Sim, python: str, version: str) -> None:
    probe = subprocess.run([python, "-c", "import sld.tss as t, tpm2_pytss as p; "
                                          "print(t.installed_version(p.__path__[0]))"],
                           capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert probe.stdout.strip() == version, probe.stderr
    info = sim.up("partial-extend")
    run = _sld(python, "verify", "--local", "--source", f"image:{info['image']}", "--tcti", info["tcti"],
               "--locality", "2", "--mode", "perform", "--json")
    verdict = json.loads(run.stdout)
    assert run.returncode == 0 and verdict["result"] == "verified" and len(verdict["extended"]) == 17, run.stderr


@pytest.mark.parametrize(("python", "version"), INTERPRETERS)
def test_each_supported_release_enrols_an_ak_and_attests(sim: Sim, tmp_path: Path, python: str, version: str) -> None:
    """The attestation commands' ESAPI calls (CreatePrimary, policy session, Create, Load, EvictControl,
    ActivateCredential, Quote, ReadPublic) and MU types, under this release's binding."""
    import base64

    from tests.swtpm.test_attest import NONCE, check_evidence

    info = sim.up("clean")
    made = _sld(python, "ak", "create", "--tcti", info["tcti"], "--json")
    assert made.returncode == 0, made.stderr
    ak = json.loads(made.stdout)
    ek, secret, cred = tmp_path / "ek.pub", b"secret of the enrolment 0123456", tmp_path / "challenge"
    ek.write_bytes(base64.b64decode(ak["ek"]["rsa"]["public"]))
    (tmp_path / "secret").write_bytes(secret)
    subprocess.run(["tpm2_makecredential", "-T", "none", "-u", str(ek), "-s", str(tmp_path / "secret"),
                    "-n", ak["ak"]["name"], "-o", str(cred)], check=True, capture_output=True)
    activated = _sld(python, "ak", "activate", "--tcti", info["tcti"], "--credential", str(cred))
    assert activated.returncode == 0 and activated.stdout.strip() == secret.hex(), activated.stderr
    out = tmp_path / "evidence.json"
    attested = _sld(python, "attest", "--nonce", NONCE.hex(), "--source", f"image:{info['image']}",
                    "--tcti", info["tcti"], "-o", str(out))
    assert attested.returncode == 0, attested.stderr
    check_evidence(json.loads(out.read_text()), info["tcti"], tmp_path)
