"""The CLI end to end on simulated securityfs views: exit codes, JSON schema, errors without tracebacks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sld.formats.tcg import NewEvent, build_crypto_agile
from sld.sim.builder import build_platform
from sld.sim.scenarios import SCENARIOS


def sld(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sld.cli", *args], capture_output=True, text=True, timeout=60)


def test_sim_list_names_every_scenario_with_its_verdict() -> None:
    out = json.loads(sld("sim", "list", "--json").stdout)
    assert out["schema"] == 1
    assert {s["name"]: s["verdict"] for s in out["scenarios"]} == {s.name: s.verdict for s in SCENARIOS}


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS if s.name != "truncated-log"])
def test_securityfs_view_replays_to_the_manifest(tmp_path: Path, name: str) -> None:
    assert sld("sim", "securityfs", "--scenario", name, "-o", str(tmp_path)).returncode == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    run = sld("inspect", "log", "--source", f"securityfs:{tmp_path}", "--pcrs", "--json")
    assert run.returncode == 0, run.stderr
    pcrs = json.loads(run.stdout)["pcrs"]
    replayed = {bank: {p: pcrs[bank][p] for p in manifest["expected_pcrs"][bank]} for bank in pcrs}
    if name == "tampered-log":
        assert replayed != manifest["expected_pcrs"]
    else:
        assert replayed == manifest["expected_pcrs"]


def test_registers_from_securityfs(tmp_path: Path) -> None:
    build_platform("txt-error").write_securityfs(tmp_path)
    out = json.loads(sld("inspect", "regs", "--source", f"securityfs:{tmp_path}", "--json").stdout)
    assert out["decoded"]["ERRORCODE"]["name"] == "SL_ERROR_TPM_EXTEND"
    assert out["decoded"]["STS"]["senter_done"] is False


def test_truncated_log_is_a_typed_error_with_offset(tmp_path: Path) -> None:
    build_platform("truncated-log").write_securityfs(tmp_path)
    run = sld("inspect", "log", "--source", f"securityfs:{tmp_path}")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "TCG_PCR_EVENT2" in run.stderr and "at 0x" in run.stderr


def test_bad_securityfs_value_is_named(tmp_path: Path) -> None:
    build_platform("clean").write_securityfs(tmp_path)
    (tmp_path / "txt" / "sts").write_bytes(b"garbage")
    run = sld("inspect", "regs", "--source", f"securityfs:{tmp_path}")
    assert run.returncode == 1 and "slaunch/txt/sts" in run.stderr and "Traceback" not in run.stderr


def test_missing_file_and_unknown_scenario_exit_codes(tmp_path: Path) -> None:
    assert sld("inspect", "log", "--file", str(tmp_path / "nope")).returncode == 3
    assert sld("sim", "securityfs", "--scenario", "nope", "-o", str(tmp_path)).returncode == 2
    assert sld("inspect", "log", "--source", "floppy").returncode == 2


@pytest.mark.referee
@pytest.mark.skipif(shutil.which("tpm2_eventlog") is None, reason="tpm2_eventlog (Debian tpm2-tools) is absent")
@pytest.mark.parametrize("scenario", ["clean", "clean-sha384", "txt-error"])
def test_tpm2_eventlog_replays_the_simulated_log_to_the_same_pcrs(tmp_path: Path, scenario: str) -> None:
    """v16 logs carry no mid-log EV_NO_ACTION markers, which tpm2-tools 5.4 would wrongly extend.

    tpm2_eventlog refuses PCR index 255, so the PCRMAPPING record (never extended) is left out.
    """
    platform = build_platform(scenario)
    kept = [NewEvent(e.pcr, e.type, e.digests, e.data) for e in platform.events if e.pcr != 0xFF]
    path = tmp_path / "log.bin"
    path.write_bytes(build_crypto_agile(platform.scenario.spec.banks, kept))
    out = subprocess.run(["tpm2_eventlog", str(path)], capture_output=True, text=True, check=True).stdout
    theirs = {(bank, int(pcr)): value.lower() for bank, pcr, value in _pcr_lines(out)}
    for bank, pcrs in platform.expected_pcrs().items():
        for pcr in (17, 18):
            assert theirs[(bank, pcr)] == pcrs[str(pcr)], (bank, pcr)


def _pcr_lines(out: str) -> list[tuple[str, str, str]]:
    """The ``pcrs:`` section of tpm2_eventlog's YAML: bank headers, then ``N : 0xHEX`` lines."""
    rows, bank = [], ""
    for line in out.split("pcrs:", 1)[1].splitlines():
        if m := re.match(r"\s+(sha\d+):\s*$", line):
            bank = m.group(1)
        elif m := re.match(r"\s+(\d+)\s*:\s*0x([0-9A-Fa-f]+)", line):
            rows.append((bank, m.group(1), m.group(2)))
    return rows


@pytest.mark.parametrize(("name", "what", "code", "text"), [
    ("clean", "slrt", 0, "Measured Kernel initrd"),
    ("clean", "heap", 0, "EVENT_LOG_POINTER2_1"),
    ("clean-tpm12", "log", 0, "EVTYPE_HASH_START"),
    ("not-launched", "heap", 3, "nothing was launched"),
    ("slrt-bad-magic", "log", 1, "OsMleData.slrt at 0x7be"),
    ("slrt-no-log-info", "log", 1, "SL_ERROR_SLRT_MISSING_ENTRY"),
    ("truncated-log", "log", 1, "truncated"),
])
def test_inspect_follows_pointers_in_an_image(tmp_path: Path, name: str, what: str, code: int, text: str) -> None:
    image = tmp_path / "phys.img"
    assert sld("sim", "build", "--scenario", name, "-o", str(image)).returncode == 0
    manifest = json.loads((tmp_path / "phys.img.json").read_text())
    assert manifest["scenario"] == name and "expected_pcrs" in manifest
    run = sld("inspect", what, "--source", f"image:{image}")
    assert run.returncode == code, run.stderr
    assert text in (run.stdout if code == 0 else run.stderr)
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("name", ["clean", "clean-tpm12", "slrt-no-log-info"])
def test_capture_reads_back_as_the_machine_showed_it(tmp_path: Path, name: str) -> None:
    image = tmp_path / "phys.img"
    build_platform(name).write_image(image)
    capture = tmp_path / "capture.img"
    assert sld("capture", "--source", f"image:{image}", "-o", str(capture)).returncode == 0
    for what in ("regs", "heap", "slrt", "log"):
        original = sld("inspect", what, "--source", f"image:{image}", "--json")
        replayed = sld("inspect", what, "--source", f"image:{capture}", "--json")
        assert replayed.returncode == original.returncode
        assert replayed.stdout.replace(f"capture:{capture}", "X") == original.stdout.replace(f"image:{image}", "X")
        assert replayed.stderr.replace(f"capture:{capture}", "X") == original.stderr.replace(f"image:{image}", "X")
    assert capture.stat().st_size < 64 << 10  # only the captured regions' bytes, compressed


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["verify"], ("text", "/run/sld/control.sock")),
        (["verify", "--json"], ("json", "/run/sld/control.sock")),
        (["verify", "--socket", "/s", "--json"], ("json", "/s")),
        (["verify", "--socket=/s"], ("text", "/s")),
        (["verify", "--local"], None),
        (["verify", "--json", "--source", "auto"], None),
        (["verify", "--socket"], None),
        (["status"], None),
        ([], None),
    ],
)
def test_only_a_plain_verify_is_offered_to_the_daemon(argv: list[str], expected: tuple[str, str] | None) -> None:
    from sld.client import _options

    assert _options(argv) == expected


def test_verify_without_a_daemon_runs_locally(tmp_path: Path) -> None:
    """No daemon on the socket: the full command runs here with the daemon's configuration and says so."""
    script = Path(sys.executable).parent / "sld"
    run = subprocess.run([str(script), "verify", "--json", "--socket", str(tmp_path / "none.sock")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode in (3, 4), run.stderr
    assert "Traceback" not in run.stderr and run.stderr.startswith("sld: ")
    notice = run.stderr.splitlines()[0]
    assert f"no sld daemon answers on {tmp_path / 'none.sock'}: verifying in this process" in notice
    assert "/etc/sld/sld.toml" in notice  # the daemon's configuration, or that there is none


def test_inspect_heap_says_zero_filled_fields_in_words(tmp_path: Path) -> None:
    """A zero-filled byte field was printed "0 x20", which reads like a hex number."""
    image = tmp_path / "phys.img"
    build_platform("clean").write_image(image)
    out = sld("inspect", "heap", "--source", f"image:{image}").stdout
    assert re.search(r"bios_acm_id\s+20 zero bytes$", out, re.M)
    assert not re.search(r"\b0 x\d", out)


@pytest.mark.parametrize("argv", [
    ["verify"], ["verify", "--json"], ["verify", "--socket", "/s"], ["verify", "--local"],
    ["verify", "--json", "--source", "auto"], ["verify", "--tcti", "swtpm"], ["verify", "--locality", "2"],
    ["verify", "--mode", "validate"], ["verify", "--policy", "p.toml"], ["verify", "--config", "c.toml"],
    ["verify", "--state-dir", "/d"],
])
def test_the_local_notice_knows_which_invocations_the_daemon_was_offered(argv: list[str]) -> None:
    """sld.commands.verify says "no sld daemon answers" exactly for what sld.client offers the daemon."""
    from sld.cli import build_parser
    from sld.client import _options
    from sld.commands.verify import _daemon_was_asked

    assert _daemon_was_asked(build_parser().parse_args(argv)) == (_options(list(argv)) is not None)


VERIFY_OPTIONS = ["--source", "--json", "--tcti", "--locality", "--mode", "--policy", "--state-dir", "--config",
                  "--local", "--socket", "--evidence", "--ak", "--nonce", "--previous", "--format", "--loc",
                  "--evid", "-h", "--", "x"]
VERIFY_VALUES = ["image:/i", "2", "7", "-1", "validate", "e.json", "json", "ear", "yaml", "00ff", "bogus", "",
                 "-odd", "--"]
VERIFY_ARGS = st.lists(st.tuples(st.sampled_from(VERIFY_OPTIONS), st.sampled_from(VERIFY_VALUES),
                                 st.sampled_from(("alone", "then", "joined"))), max_size=6)


@given(st.sampled_from((["verify"], ["verify", "--evidence", "e.json"])), VERIFY_ARGS)
@settings(max_examples=1000, deadline=None)
def test_verify_options_read_without_argparse_are_what_argparse_makes(start: list[str],
                                                                      args: list[tuple[str, str, str]]) -> None:
    """The cold path's reader of `sld verify`'s options (sld.cli._read_verify, on sld.argv.read), of this host
    or, with --evidence, of another's evidence (the evidence handler included), either leaves a command line
    to argparse or makes exactly argparse's namespace of it: the options are declared once."""
    from sld.cli import _read_verify, build_parser

    argv = list(start)
    for option, value, form in args:
        argv += {"alone": [option], "then": [option, value], "joined": [f"{option}={value}"]}[form]
    fast = _read_verify(argv)
    if fast is not None:
        assert vars(fast) == vars(build_parser("verify").parse_args(argv))


def test_a_local_verification_command_line_is_read_without_argparse() -> None:
    from sld.cli import _read_verify

    argv = ["verify", "--local", "--json", "--source", "image:/i", "--tcti", "swtpm:port=2321", "--locality", "2",
            "--mode=validate"]
    fast = _read_verify(argv)
    assert fast is not None and (fast.locality, fast.mode, fast.local, fast.socket) == (2, "validate", True,
                                                                                        "/run/sld/control.sock")
    assert _read_verify([*argv, "--locality", "3"]) is None and _read_verify(["verify", "--loc", "2"]) is None
