"""``sld inspect log --file``: the output, byte for byte, is what sld printed before the streaming renderer.

The golden files under golden/inspect-log/ were written by ``sld inspect log --file NAME --pcrs [--json]``
at commit 286b5dc (the renderer that built every Event and one payload first), run from the corpus
folder (corpus logs) or from the golden folder (the built-*.bin logs: TPM 1.2 container, SHA-1 log, and a
four-bank crypto-agile log with records lacking a bank). The forms without ``--pcrs`` are those outputs
without their PCR part.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "inspect-log"
CASES = sorted(p.name.removesuffix(".pcrs.txt") for p in GOLDEN.glob("*.pcrs.txt"))


def _log_file(name: str, corpus: Path) -> tuple[Path, str]:
    """(folder to run in, the path as given on the command line) for a golden case."""
    if name.startswith("built-"):
        return GOLDEN, f"{name}.bin"
    folder, _, stem = name.partition("_")
    return corpus, f"{folder}/{stem}.bin"


def _inspect(cwd: Path, path: str, *flags: str) -> bytes:
    run = subprocess.run([sys.executable, "-m", "sld.cli", "inspect", "log", "--file", path, *flags], cwd=cwd,
                         capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest, corpus: Path) -> tuple[Path, str, str]:
    cwd, path = _log_file(request.param, corpus)
    return cwd, path, request.param


def test_every_corpus_log_has_golden_output(corpus: Path) -> None:
    logs = {f"{p.parent.name}_{p.stem}" for p in corpus.glob("*/*.bin")}
    assert logs and logs <= set(CASES)


def test_text_output_is_unchanged(case: tuple[Path, str, str]) -> None:
    cwd, path, name = case
    golden = (GOLDEN / f"{name}.pcrs.txt").read_bytes()
    assert _inspect(cwd, path, "--pcrs") == golden
    events_only = golden[: golden.index(b"\n\nPCR ")] + b"\n"
    assert _inspect(cwd, path) == events_only


def test_json_output_is_unchanged(case: tuple[Path, str, str]) -> None:
    cwd, path, name = case
    golden = (GOLDEN / f"{name}.pcrs.json").read_bytes()
    assert _inspect(cwd, path, "--pcrs", "--json") == golden
    events_only = golden[: golden.index(b',\n  "pcrs": {')] + b"\n}\n"
    assert _inspect(cwd, path, "--json") == events_only
