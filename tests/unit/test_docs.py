"""Man pages and completions are generated from the code (one source) and kept committed in sync."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
GENERATED = ROOT / "packaging" / "generated"


def test_committed_docs_equal_what_the_code_generates(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "packaging" / "gen_docs.py"), str(tmp_path)], check=True)
    for f in tmp_path.iterdir():
        assert f.read_text() == (GENERATED / f.name).read_text(), f"{f.name}: run python packaging/gen_docs.py"


def test_sld8_covers_every_command_exit_code_check_and_metric() -> None:
    from sld.checks import CATALOGUE

    text = (GENERATED / "sld.8").read_text().replace("\\-", "-")
    for cmd in ("inspect", "verify", "daemon", "status", "capture", "quarantine", "sim up", "sim down", "sim build"):
        assert f".B sld {cmd}" in text
    assert all(c.id in text for c in CATALOGUE)
    assert "sld_launch_verified" in text and "sld_pcr_match" in text
    for code in range(5):
        assert f".B {code}\n" in text


def test_sld_toml5_documents_every_key() -> None:
    import dataclasses

    from sld.config import Config

    text = (GENERATED / "sld.toml.5").read_text()
    for section in dataclasses.fields(Config):
        if section.name != "path":
            for f in dataclasses.fields(section.default_factory()):  # type: ignore[misc]
                assert f".B {f.name}" in text


@pytest.mark.skipif(shutil.which("man") is None, reason="man is absent")
def test_man_renders_without_warnings() -> None:
    for page in ("sld.8", "sld.toml.5"):
        run = subprocess.run(["man", "-l", "--warnings", str(GENERATED / page)], capture_output=True, text=True,
                             env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
        assert run.returncode == 0 and run.stderr == "", run.stderr


def test_bash_completion_completes_commands() -> None:
    script = f"source {GENERATED / 'sld.bash-completion'}; COMP_WORDS=(sld sim ''); COMP_CWORD=2; _sld; " \
             "echo ${COMPREPLY[@]}"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert {"up", "down", "build", "list", "securityfs"} <= set(out)
