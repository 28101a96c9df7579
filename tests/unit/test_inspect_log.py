"""``sld inspect log --file``: the output, byte for byte, is what sld printed before the streaming renderer.

The golden files under golden/inspect-log/ were written by ``sld inspect log --file NAME --pcrs [--json]``
at commit 286b5dc (the renderer that built every Event and one payload first), run from the corpus
folder (corpus logs) or from the golden folder (the built-*.bin logs: TPM 1.2 container, SHA-1 log, and a
four-bank crypto-agile log with records lacking a bank). The forms without ``--pcrs`` are those outputs
without their PCR part. Since then one change, on purpose: a one-event log says "1 event" (issue 16).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sld.formats.eventlog import parse_log
from sld.formats.tcg import NewEvent, build_crypto_agile
from sld.replay import replay

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


@pytest.mark.parametrize("kind", ["/dev/zero", "link to /dev/zero", "FIFO", "directory"])
def test_what_is_not_a_regular_file_is_refused_with_a_typed_error(tmp_path: Path, kind: str) -> None:
    """Once a MemoryError (exit 70) or a hang (issue 17): now exit 3 naming the file, at once."""
    path = tmp_path / "log"
    if kind == "/dev/zero":
        path = Path("/dev/zero")
    elif kind == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "FIFO":
        os.mkfifo(path)
    else:
        path.mkdir()
    run = subprocess.run([sys.executable, "-m", "sld.cli", "inspect", "log", "--file", str(path), "--json"],
                         capture_output=True, text=True, timeout=20)
    assert run.returncode == 3, run.stderr
    assert f"file:{path}" not in run.stdout and str(path) in run.stderr and "not a regular file" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_record_past_the_end_of_a_streamed_file_is_a_typed_error(tmp_path: Path) -> None:
    log = (GOLDEN / "built-agile-4banks.bin").read_bytes()
    path = tmp_path / "cut.bin"
    path.write_bytes(log[:700])
    run = subprocess.run([sys.executable, "-m", "sld.cli", "inspect", "log", "--file", str(path)],
                         capture_output=True, text=True, timeout=20)
    assert run.returncode == 1 and "TCG_PCR_EVENT2" in run.stderr and "truncated" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_file_of_many_chunks_prints_every_record_as_json_dumps_would(tmp_path: Path) -> None:
    """A log of several read chunks (1 MiB each): the records are the whole-log parse's, the document is
    exactly what json.dumps(indent=2) makes of it, and the table has a row per record."""
    banks = ("sha1", "sha256", "sha384")
    events = [NewEvent(17 + i % 3, 0x502 + i % 3, {b: hashlib.new(b, b"%d" % i).digest() for b in banks},
                       b"event %d " % i * (i % 9)) for i in range(14_000)]
    blob = build_crypto_agile(banks, events)
    assert len(blob) > 2 << 20
    path = tmp_path / "big.bin"
    path.write_bytes(blob)
    out = _inspect(tmp_path, "big.bin", "--pcrs", "--json").decode()
    doc = json.loads(out)
    assert out == json.dumps(doc, indent=2) + "\n"
    log = parse_log(blob)
    assert [(e["index"], e["offset"], e["pcr"], e["type"], e["data"]) for e in doc["events"]] == \
        [(e.index, e.offset, e.pcr, e.type, e.data.hex()) for e in log.events]
    assert doc["pcrs"] == {b: {str(p): v.hex() for p, v in values.items()} for b, values in replay(log).values.items()}
    table = _inspect(tmp_path, "big.bin").decode().splitlines()
    assert len(table) == 2 + len(log.events) and table[-1].split()[:3] == ["14000", "18", "SLAUNCH_START"]


@pytest.mark.parametrize("held", [1 << 17, 5000, 0], ids=["held", "walked-again-after-a-run", "walked-again"])
def test_a_table_longer_than_the_records_held_is_the_same_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               held: int) -> None:
    """The table is the same bytes whether the first walk's records are rendered (a log of up to
    HELD_RECORDS) or the log is walked again (a longer one): here 14,000 records, four runs of a walk."""
    from functools import partial

    from sld.commands import inspect_log
    from sld.formats.eventlog import LogHeader, stream_runs

    events = [NewEvent(17 + i % 2, 0x502, {"sha256": hashlib.sha256(b"%d" % i).digest()}, b"e%d" % i)
              for i in range(14_000)]
    path = tmp_path / "log.bin"
    path.write_bytes(build_crypto_agile(("sha256",), events))
    expected = _inspect(tmp_path, "log.bin", "--pcrs")
    monkeypatch.setattr(inspect_log, "HELD_RECORDS", held)
    walks: list[int] = []
    out: list[bytes] = []
    with path.open("rb") as f:
        def walk() -> tuple[LogHeader, inspect_log.Runs]:
            walks.append(f.seek(0))
            return stream_runs(iter(partial(f.read, inspect_log.CHUNK), b""), path.stat().st_size)

        inspect_log._text(walk, True, "file:log.bin", lambda s: out.append(s.encode()), out.append)
    assert b"".join(out) == expected
    assert len(walks) == (1 if held >= 14_000 else 2)
