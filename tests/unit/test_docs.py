"""Man pages and completions are generated from the code (one source) and kept committed in sync."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
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
    for code in range(6):
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


def _actions(parser: argparse.ArgumentParser, prefix: str = "sld") -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{prefix} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield prefix, action


def test_every_option_and_argument_has_a_help_text() -> None:
    from sld.cli import build_parser

    missing = [f"{cmd} {'/'.join(a.option_strings) or a.dest}" for cmd, a in _actions(build_parser()) if not a.help]
    assert missing == []


def test_scenario_choices_and_help_name_every_scenario() -> None:
    from sld.cli import build_parser
    from sld.sim.scenarios import SCENARIOS

    names = [s.name for s in SCENARIOS]
    scenario_options = [a for cmd, a in _actions(build_parser()) if "--scenario" in a.option_strings]
    assert len(scenario_options) == 3  # sim build, up, securityfs
    text = (GENERATED / "sld.8").read_text().replace("\\-", "-")
    for option in scenario_options:
        assert list(option.choices) == names
    section = text.split(".B sld sim up", 1)[1].split(".B sld sim", 1)[0]
    assert all(name in section for name in names)


def _completions(shell: list[str], script: str) -> list[str]:
    return subprocess.run([*shell, script], capture_output=True, text=True, check=True).stdout.split()


def test_bash_completion_completes_every_commands_subcommands_and_their_options() -> None:
    source = f"source {GENERATED / 'sld.bash-completion'}; "
    script = source + "COMP_WORDS=(sld policy ''); COMP_CWORD=2; _sld; echo ${COMPREPLY[@]}"
    assert _completions(["bash", "-c"], script) == ["create", "export", "merge", "show"]
    script = source + "COMP_WORDS=(sld policy create --ho); COMP_CWORD=3; _sld; echo ${COMPREPLY[@]}"
    assert _completions(["bash", "-c"], script) == ["--host"]


def test_bash_completion_completes_scenario_names() -> None:
    script = f"source {GENERATED / 'sld.bash-completion'}; COMP_WORDS=(sld sim up --scenario part); COMP_CWORD=4; " \
             "_sld; echo ${COMPREPLY[@]}"
    assert _completions(["bash", "-c"], script) == ["partial-extend"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh (Debian zsh) is absent")
def test_zsh_completion_offers_scenario_names() -> None:
    """zsh's bashcompinit runs the function in sh emulation; zsh itself then filters by the typed prefix."""
    from sld.sim.scenarios import SCENARIOS

    script = f"autoload -U compinit && compinit -u -D; source {GENERATED / '_sld'}; " \
             "t() { emulate -L sh; COMP_WORDS=(sld sim up --scenario ''); COMP_CWORD=4; _sld; " \
             "echo ${COMPREPLY[@]}; }; t"
    assert _completions(["zsh", "-f", "-c"], script) == [s.name for s in SCENARIOS]


def test_sld_toml5_shows_defaults_as_toml() -> None:
    """Each documented default reads back, as TOML, to the configuration's default (no Python reprs)."""
    import dataclasses
    import tomllib

    from sld.config import Config

    text = (GENERATED / "sld.toml.5").read_text().replace("\\-", "-").replace("\\(aq", "'")
    for section in dataclasses.fields(Config):
        if section.name == "path":
            continue
        for f in dataclasses.fields(section.default_factory()):  # type: ignore[misc]
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            shown = re.search(rf"^\.B {f.name}\ndefault (.*?)\. ", text.split(f"[{section.name}]", 1)[1], re.M)
            assert shown, f"{section.name}.{f.name}"
            if default is None:
                assert shown.group(1) == "(unset)"
                continue
            value = tomllib.loads(f"v = {shown.group(1)}")["v"]
            assert value == (list(default) if isinstance(default, tuple) else default), f"{section.name}.{f.name}"
