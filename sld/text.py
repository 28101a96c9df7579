"""Counted nouns in messages, so that no report, journal line or error says "1 logged events".

Ground floor (imports nothing): verdict details, reports and errors all use it.
"""

from __future__ import annotations


def count(n: int, noun: str, plural: str = "") -> str:
    """``count(1, "event")`` is "1 event", ``count(2, "entry", "entries")`` "2 entries"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
