"""``sld policy export --format keylime`` judged by Keylime itself (the PyPI package in .venv-referee):
its policy reader accepts the file, and its quote check accepts a real swtpm quote of the simulated
launch's PCR17/18 and rejects a quote of another launch and a tampered quote.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.swtpm.conftest import Sim, sld
from tests.tpm2tools import Tools

ROOT = Path(__file__).resolve().parents[2]
NONCE = "sld-keylime-nonce"


def keylime_judges(referee: str, policy: Path, tools: Tools, label: str, tamper: bytes = b"") -> dict:
    """Keylime's verdict on a fresh quote; ``tamper``: a PCR value whose bytes are altered in the PCR blob."""
    ak = tools.create_ak(label=label)
    quote = tools.quote(ak, "sha256:17,18", NONCE.encode(), label=label)
    if tamper:
        blob = quote.pcrs.read_bytes()
        assert blob.count(tamper) == 1
        quote.pcrs.write_bytes(blob.replace(tamper, bytes(len(tamper))))
    run = subprocess.run([referee, str(ROOT / "tests" / "swtpm" / "keylime_check.py"), str(policy), str(ak.public),
                          str(quote.attest), str(quote.signature), str(quote.pcrs), NONCE],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.splitlines()[-1])


def create(sim: Sim, tmp_path: Path, name: str) -> Path:
    policy = tmp_path / f"{name}.toml"
    run = sld("policy", "create", "--source", f"image:{sim.info['image']}", "--tcti", sim.info["tcti"],
              "--locality", "2", "-o", str(policy))
    assert run.returncode == 0, run.stderr
    return policy


def export(policy: Path) -> Path:
    out = policy.with_suffix(".json")
    run = sld("policy", "export", "--format", "keylime", str(policy))
    assert run.returncode == 0, run.stderr
    out.write_text(run.stdout)
    return out


def test_keylime_accepts_the_launch_and_rejects_another_and_a_tampered_quote(sim: Sim, tmp_path: Path,
                                                                            referee: str) -> None:
    sim.up("clean")
    clean = create(sim, tmp_path, "clean")
    exported = export(clean)
    values = json.loads(exported.read_text())
    assert set(values) == {"17", "18"} and all(v != "f" * 64 for vs in values.values() for v in vs)
    tools = Tools(sim.info["tcti"], tmp_path / "tools-clean")
    assert keylime_judges(referee, exported, tools, "good") == {"mask": "0x60000", "events": []}
    tampered = keylime_judges(referee, exported, tools, "tampered", tamper=bytes.fromhex(values["17"][0]))
    assert tampered["events"] == ["qoute_validation.quote_validation"]  # Keylime's own spelling of the id

    sim.up("wrong-kernel")
    tools = Tools(sim.info["tcti"], tmp_path / "tools-other")
    assert keylime_judges(referee, exported, tools, "other")["events"] == ["pcr_validation.invalid_pcr_17"]
    both = tmp_path / "both.toml"
    assert sld("policy", "merge", str(clean), str(create(sim, tmp_path, "update")), "-o", str(both)).returncode == 0
    assert len(json.loads(export(both).read_text())["17"]) == 2  # an update in progress: either kernel
    assert keylime_judges(referee, export(both), tools, "update")["events"] == []
