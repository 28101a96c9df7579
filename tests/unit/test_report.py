"""What sld prints for people: full values where two differ, counted nouns in the singular for one."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from sld.report import verdict_text
from sld.text import count
from sld.verify import Check, PcrState, Verdict
from sld.vocab import CheckId, CheckStatus, Mode, PcrStatus, Result

SLD = Path(__file__).parents[2] / "sld"


def digest(seed: bytes) -> bytes:
    """Two of these share their first 8 bytes, so 16-hex-digit prefixes alone could not tell them apart."""
    return b"\x5a" * 8 + hashlib.sha256(seed).digest()[8:]


def verdict(expected: bytes, actual: bytes, extended: tuple[int, ...] = ()) -> Verdict:
    state = PcrState(17, PcrStatus.MISMATCH, (3,), None, {"sha256": expected}, {"sha256": actual})
    check = Check(CheckId.PCR_MATCH, CheckStatus.FAIL, "PCR17 mismatch in sha256 (events [3])")
    return Verdict(Result.FAILED, "PCRs equal the replayed log: PCR17 mismatch", "image:x", Mode.VALIDATE, (check,),
                   (state,), ("sha256",), extended)


def test_values_that_differ_are_printed_whole() -> None:
    exp, act = digest(b"expected"), digest(b"actual")
    assert exp.hex()[:16] == act.hex()[:16]
    text = verdict_text(verdict(exp, act))
    assert f"  expected {exp.hex()}" in text and f"  actual   {act.hex()}" in text
    assert "PCR17 sha256 differs:" in text


def test_values_that_match_are_not_repeated() -> None:
    same = digest(b"same")
    assert same.hex() not in verdict_text(verdict(same, same))


def test_one_of_anything_is_singular() -> None:
    assert count(1, "event") == "1 event" and count(2, "event") == "2 events" and count(0, "event") == "0 events"
    assert count(1, "entry", "entries") == "1 entry" and count(3, "entry", "entries") == "3 entries"
    same = digest(b"same")
    assert "extended 1 deferred event: [7]" in verdict_text(verdict(same, same, (7,)))


def test_no_message_counts_with_a_fixed_plural() -> None:
    """Every f-string ``{len(x)} nouns`` goes through sld.text.count (sizes in bytes excepted)."""
    fixed = re.compile(r"\{len\([^{}]*\)\} (?!bytes\b)[a-z]+s\b")
    hits = [f"{p.relative_to(SLD)}:{n}" for p in SLD.rglob("*.py")
            for n, line in enumerate(p.read_text().splitlines(), 1) if fixed.search(line)]
    assert hits == []
