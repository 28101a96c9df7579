"""Every command the README and `sld sim up` print runs as printed, with `sld` from PATH (issue 16).

Each fenced block of README.md is one of three kinds, and the README itself says which:
- the first two, before any section: the demo (run here from a plain PATH, as a new operator runs it)
  and the test command (what runs this file: `.ci/run` runs exactly it);
- a block introduced by "On a real host (why):" needs what this machine must not be or touch (a TXT
  server's /dev/mem, the installed package, systemd's units): its `sld` commands are parsed by sld's
  own parser (every subcommand, option, choice and value type exists), its other commands name
  programs this machine has, the files the package installs and the metrics port sld listens on;
- every other block runs as printed, top to bottom as an operator follows the README, in one private
  mount and PID namespace with its own /run and /tmp (the blocks name fixed paths there), with real
  swtpms where they start the simulator.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
ISOLATED = ["unshare", "-m", "--propagation", "private", "-p", "-f", "--mount-proc"]


def _private_mounts() -> str:
    """A private /run and /tmp for the README's fixed paths, the checkout and its venv kept in sight: a
    clone under /tmp (as a CI may make one) is bound back into the new /tmp from a hold of the old one."""
    hold = Path("/run/.sld-readme-old-tmp")
    steps = ["mount -t tmpfs sld-run /run", f"mkdir {hold}", f"mount --bind /tmp {hold}", "mount -t tmpfs sld-tmp /tmp"]
    for kept in sorted({ROOT.resolve(), Path(sys.executable).parent.parent.resolve()}):
        if kept.is_relative_to("/tmp"):
            there, here = shlex.quote(str(hold / kept.relative_to("/tmp"))), shlex.quote(str(kept))
            steps += [f"mkdir -p {here}", f"mount --bind {there} {here}"]
    return " && ".join([*steps, 'exec bash -euo pipefail -c "$0"'])


PRIVATE = _private_mounts()
REAL_HOST = re.compile(r"On a real host \((?P<why>.+)\):")
SEPARATORS = {"&&", "||", ";", "|", "&"}
REDIRECTIONS = {">", ">>", "<", "2>"}

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="a private mount namespace needs root and unshare (util-linux)")


@dataclass(frozen=True)
class Block:
    """One fenced block: the ``##`` section it is in, the paragraph that introduces it, its text."""

    section: str
    intro: str
    text: str
    line: int

    @property
    def real_host(self) -> bool:
        return REAL_HOST.fullmatch(self.intro) is not None


def readme_blocks() -> list[Block]:
    """Every fenced block of the README, in order."""
    blocks: list[Block] = []
    section, paragraph, previous = "", [], ""
    lines = README.read_text().splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        if line.startswith("```"):
            assert line == "```", f"README.md:{number + 1}: a fence with an info string: {line}"
            end = lines.index("```", number + 1)
            blocks.append(Block(section, " ".join(paragraph), "\n".join(lines[number + 1 : end]) + "\n", number + 1))
            number, paragraph, previous = end + 1, [], ""
            continue
        if line.startswith(("# ", "## ")):
            section = line.split(" ", 1)[1]
        if line.strip():
            paragraph = [*paragraph, line.strip()] if previous.strip() else [line.strip()]
        number, previous = number + 1, line
    return blocks


def runnable() -> dict[str, Block]:
    """The blocks run as printed, named ``section #n``, after the demo and the test command."""
    names: dict[str, Block] = {}
    per_section: Counter[str] = Counter()
    for block in readme_blocks()[2:]:
        if not block.real_host:
            names[f"{block.section} #{per_section[block.section]}"] = block
            per_section[block.section] += 1
    return names


def commands(text: str) -> list[list[str]]:
    """The simple commands of a block (comments, redirections and their targets left out)."""
    found: list[list[str]] = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        argv: list[str] = []
        tokens = iter(lexer)
        for token in tokens:
            if token in SEPARATORS:
                found.append(argv)
                argv = []
            elif token in REDIRECTIONS:
                next(tokens)
            else:
                argv.append(token)
        found.append(argv)
    return [argv for argv in found if argv]


def env() -> dict[str, str]:
    """PATH with the installed `sld` (the venv's bin) first, as after the demo."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def in_private_run(script: str) -> subprocess.CompletedProcess[str]:
    # A PID namespace too: whatever a failing block leaves running (its swtpm, its daemon) ends with it.
    return subprocess.run([*ISOLATED, "sh", "-c", PRIVATE, script],
                          capture_output=True, text=True, env=env(), timeout=600)


def test_the_readme_starts_with_the_demo_then_the_tests() -> None:
    blocks = readme_blocks()
    assert [b.text for b in blocks[:2]] == ["bash scripts/demo.sh\n", "bash scripts/test.sh\n"]
    assert all(b.section != blocks[0].section for b in blocks[2:]), "a third command before the first section"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == blocks[1].text.strip()  # CI runs exactly the README's test command
    assert "`bash scripts/test.sh -m 'not system'`" in README.read_text()  # ... and how to leave the system tier out
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert any(marker.startswith("system:") for marker in markers)


def installed_paths() -> set[str]:
    """Every file packaging/debian/sld.install puts on the host (``SOURCE DIR/`` lines)."""
    lines = (ROOT / "packaging" / "debian" / "sld.install").read_text().splitlines()
    return {"/" + dest + Path(source).name for source, dest in (line.split() for line in lines if line.strip())}


def parse_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What sld's parser says of ``argv`` (empty when it accepts it), as ``sld`` would print it."""
    from sld.cli import build_parser

    try:
        build_parser(argv[0] if argv else None).parse_args(argv)
    except SystemExit:
        return capsys.readouterr().err or "(exit)"
    return ""


@pytest.mark.parametrize("block", [b for b in readme_blocks() if b.real_host], ids=lambda b: f"line{b.line}")
def test_real_host_blocks_name_what_exists(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    from sld.config import MetricsConfig

    for argv in commands(block.text):
        if argv[0] == "sld":
            assert not (error := parse_error(argv[1:], capsys)), f"README.md:{block.line}: {shlex.join(argv)}: {error}"
            continue
        assert shutil.which(argv[0]), f"README.md:{block.line}: {argv[0]} is not a program"
        for arg in argv[1:]:
            if arg.startswith("/usr/share/doc/sld/"):
                assert arg in installed_paths(), f"README.md:{block.line}: the package does not install {arg}"
            if argv[0] == "curl" and not arg.startswith("-"):
                assert arg.startswith(f"{MetricsConfig.listen}:{MetricsConfig.port}/"), arg


def test_the_service_block_runs_what_the_unit_runs() -> None:
    """The real-host block's daemon line is units/sld.service's ExecStart, as the packages install it."""
    unit = (ROOT / "units" / "sld.service").read_text()
    line = re.search(r"^ExecStart=(.*)$", unit, re.M)
    assert line is not None
    exec_start = shlex.split(line[1])
    assert exec_start[0] == "/usr/bin/sld"
    service = [b for b in readme_blocks() if b.section == "The service" and b.real_host][0]
    assert ["sld", *exec_start[1:]] in commands(service.text)


EXPECTED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # block: what its stdout, its stderr show
    "A short tour #0": (("verdict: verified", '"result": "verified"', "PCR17", "simulated platform stopped"),
                        ("verifying in this process (configuration /run/sld-tour/sld.toml)",)),
    "A short tour #1": (("state: running", "verdict: verified", "simulated platform stopped"), ()),
    "Appraisal: a policy of what must launch #0": (
        ("verdict: verified", "verdict: failed: launch approved by the policy: part mle", "exit 1"), ()),
    "Attestation: evidence another machine can check #0": (
        ("simulated platform stopped",), ("collecting evidence in this process (configuration /run/sld-tour",)),
    "Verifying another host's evidence (no TXT, no TPM) #0": (
        ("evidence: verified", '"id": "policy.match"', '"ear_status": "affirming"'), ()),
    "Bug reports, packages, monitoring #0": (
        ("sld-capture.json", "memory/0x", "TXT heap from capture:/tmp/sld-report.cap", "OsMleData"), ()),
}


@needs_root
def test_every_other_block_runs_as_printed_top_to_bottom() -> None:
    blocks = runnable()
    assert set(blocks) == set(EXPECTED), "each block the README runs says here what it shows"
    names = list(blocks)
    script = "".join(f"echo @@block {i}; echo @@block {i} >&2; bash -euo pipefail -c {shlex.quote(blocks[name].text)}\n"
                     for i, name in enumerate(names))
    run = in_private_run(script)
    outs = re.split(r"^@@block \d+\n", run.stdout, flags=re.M)[1:]
    errs = re.split(r"^@@block \d+\n", run.stderr, flags=re.M)[1:]
    failed = names[len(outs) - 1] if outs else "(none started)"
    assert run.returncode == 0, f"{failed} (README.md:{blocks[failed].line}): {outs[-1][-3000:]}{errs[-1][-3000:]}"
    assert len(outs) == len(errs) == len(names)
    for name, out, err in zip(names, outs, errs, strict=True):
        assert "Traceback" not in err and "internal error" not in err, f"{name}: {err[-3000:]}"
        stdout_shows, stderr_shows = EXPECTED[name]
        assert [s for s in stdout_shows if s not in out] == [], f"{name}: {out[-3000:]}"
        assert [s for s in stderr_shows if s not in err] == [], f"{name}: {err[-3000:]}"
    assert outs[0].count("verdict: verified") == 1  # the tour's --json verdict is JSON, not the table


def printed_commands(up_stdout: str) -> dict[str, str]:
    """``  label    command`` lines of `sld sim up`'s output that name a command."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^  (\w+)\s+((?:sld|curl) .*)$", up_stdout, re.M)}


@needs_root
def test_the_commands_sim_up_prints_run_as_printed(tmp_path: Path) -> None:
    root, conf = tmp_path / "sim", tmp_path / "sim" / "sld.toml"
    up = subprocess.run(["sld", "sim", "up", "--scenario", "unextended", "--dir", str(root), "--daemon-config",
                         str(conf)], capture_output=True, text=True, env=env(), timeout=120)
    assert up.returncode == 0, up.stderr
    commands = printed_commands(up.stdout)
    assert set(commands) == {"verify", "local", "daemon", "status", "ask", "metrics"}

    def run(label: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(commands[label], shell=True, capture_output=True, text=True, env=env(), timeout=120)
        assert done.returncode == 0, f"{commands[label]}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done

    daemon = None
    try:
        assert "verdict: verified" in run("verify").stdout  # extends the deferred events
        assert "verdict: verified" in run("local").stdout
        # Its own session: the shell may fork the daemon rather than exec it, so the whole group is stopped.
        daemon = subprocess.Popen(commands["daemon"], shell=True, env=env(), stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
        deadline = time.monotonic() + 30
        while "state: running" not in (status := subprocess.run(commands["status"], shell=True, capture_output=True,
                                                                  text=True, env=env())).stdout:
            assert time.monotonic() < deadline, status.stdout + status.stderr
            time.sleep(0.2)
        assert "verdict: verified" in run("ask").stdout
        assert "sld_launch_verified 1.0" in run("metrics").stdout
        assert (root / "state" / "sinit.json").exists()  # the daemon's memory of the SINIT: in the sim's directory
    finally:
        if daemon is not None:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(10)
        subprocess.run(["sld", "sim", "down", "--dir", str(root)], env=env(), capture_output=True)


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "sld").exists(),
                    reason="scripts/setup.sh has not made this checkout's .venv (the demo would create one)")
@needs_root
def test_the_demo_puts_sld_on_path() -> None:
    """The README's first command, then `sld` from a plain PATH (/usr/local/bin is a private tmpfs here, so the
    host's is untouched)."""
    demo = readme_blocks()[0].text.strip()
    script = f"mount -t tmpfs sld-bin /usr/local/bin && {demo} && command -v sld && sld sim list"
    run = subprocess.run([*ISOLATED, "sh", "-c", script], cwd=ROOT,
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "=== scenario: partial-extend" in run.stdout and "/usr/local/bin/sld" in run.stdout
    assert "verdict: verified" in run.stdout and "(exit 1)" in run.stdout  # the tampered log fails


UNITS = {"": 1, "s": 1, "bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
QUANTITY = re.compile(r"(\d[\d,]*(?:\.\d+)?) ?(KiB|MiB|GiB|bytes|s)?\b")
REFERENCE = re.compile(r"`(?:\[(?P<section>\w+)\] (?P<key>\w+)|(?P<module>(?:[a-z_]+\.)+)(?P<name>[A-Z][A-Z_]+))`"
                       r"(?:, (?P<low>[\d.]+)\.\.(?P<high>[\d.]+))?")


def reliability_rows() -> list[list[str]]:
    """The cells of the one table of "Reliability: what is bounded, and how"."""
    section = README.read_text().split("### Reliability: what is bounded, and how\n", 1)[1].split("\n#", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert lines[:2] == ["| what is bounded | the bound (key) | how |", "|---|---|---|"]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


def referenced(match: re.Match[str]) -> tuple[object, tuple[float, float] | None]:
    """The value a bound cites: a configuration key's default (and its allowed range), or a constant of sld/."""
    import importlib
    import pkgutil

    import sld
    from sld.config import RANGES, Config

    if match["section"]:
        key = f"{match['section']}.{match['key']}"
        return getattr(getattr(Config(), match["section"]), match["key"]), RANGES.get(key)
    suffix = "." + match["module"].rstrip(".")
    modules = [module for m in pkgutil.walk_packages(sld.__path__, "sld.") if m.name.endswith(suffix)
               and hasattr(module := importlib.import_module(m.name), match["name"])]
    assert len(modules) == 1, f"{match[0]} names {[m.__name__ for m in modules] or 'nothing in sld/'}"
    return getattr(modules[0], match["name"]), None


def test_the_reliability_table_is_true_to_the_code() -> None:
    """Issue 17's table: every key or constant a bound cites exists, and the quantity written just before it
    (5 s, 64 KiB, 65,536) is its value, as is a range written after a key (0.1..600)."""
    rows = reliability_rows()
    assert len({row[0] for row in rows}) == len(rows) >= 20 and all(len(row) == 3 for row in rows)
    checked = 0
    for what, bound, _how in rows:
        start = 0
        for match in REFERENCE.finditer(bound):
            value, allowed = referenced(match)
            quantities = list(QUANTITY.finditer(bound[start : match.start()]))
            if quantities:
                number, unit = quantities[-1].groups()
                assert float(number.replace(",", "")) * UNITS[unit or ""] == value, f"{what}: {match[0]} is {value}"
                checked += 1
            if match["low"]:
                assert allowed == (float(match["low"]), float(match["high"])), f"{what}: {match[0]} allows {allowed}"
            start = match.end()
    assert checked >= 20
