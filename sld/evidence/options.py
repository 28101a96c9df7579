"""The options of ``sld verify --evidence``, declared once: sld.cli gives them to argparse from this table,
and :func:`parse` reads a command line made only of them without argparse (:mod:`sld.argv`).

A verifier checks a fleet's evidence one cold process per host; building sld's whole argparse parser
(and the shutil, bz2, lzma and gettext modules argparse imports to format help) costs that process a
quarter of its time (benchmarks/verify_evidence.py). Anything :func:`parse` does not take as argparse
would (``--help``, another option, a repeated one, a bad ``--format``) it leaves to argparse.
"""

from __future__ import annotations

from types import SimpleNamespace

from sld.argv import attribute, read

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sld.argv import Spec

HANDLER = "sld.commands.evidence:run"
FORMATS = ("text", "json", "ear")
OPTIONS: tuple[tuple[str, str, str], ...] = (  # option, metavar, help
    ("--evidence", "FILE", "verify this evidence file (sld attest) instead of this host"),
    ("--ak", "PEM", "(evidence) the AK public key the verifier trusts"),
    ("--nonce", "HEX", "(evidence) the nonce the verifier gave sld attest"),
    ("--previous", "FILE", "(evidence) earlier evidence of that host: the new one must be newer (TPM clock, "
     "reset and restart counts)"),
    ("--format", "FORMAT", "(evidence) text, json (as --json) or an EAT Attestation Result (draft-ietf-rats-ear)"),
)
# sld verify's own options that the evidence path reads too (sld.cli declares them with the others)
SHARED: dict[str, Spec] = {"--policy": {}, "--json": {"action": "store_true"}}


def parse(argv: list[str]) -> SimpleNamespace | None:
    """``verify --evidence FILE`` with only these options, read by :func:`sld.argv.read`, as the namespace
    argparse would make of it; None when argparse must read the command line."""
    if argv[:1] != ["verify"]:
        return None
    specs = {option: {"choices": FORMATS} if option == "--format" else {} for option, _, _ in OPTIONS}
    values = read(argv[1:], specs | SHARED)
    if values is None or not values["--evidence"]:
        return None
    return SimpleNamespace(handler=HANDLER, **{attribute(option): value for option, value in values.items()})
