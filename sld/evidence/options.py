"""The options of ``sld verify --evidence``, declared once: sld.cli gives them to argparse from this table,
and :func:`parse` reads a command line made only of them without argparse.

A verifier checks a fleet's evidence one cold process per host; building sld's whole argparse parser
(and the shutil, bz2, lzma and gettext modules argparse imports to format help) costs that process a
quarter of its time (benchmarks/verify_evidence.py). Anything :func:`parse` does not take as argparse
would (``--help``, another option, a repeated one, a bad ``--format``) it leaves to argparse.
"""

from __future__ import annotations

from types import SimpleNamespace

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
SHARED_VALUES = ("--policy",)
SHARED_SWITCHES = ("--json",)


def parse(argv: list[str]) -> SimpleNamespace | None:
    """``verify --evidence FILE`` with only these options (``--opt VALUE`` or ``--opt=VALUE``), as the
    namespace argparse would make of it; None when argparse must read the command line."""
    if argv[:1] != ["verify"]:
        return None
    values = {opt: None for opt, _, _ in OPTIONS} | dict.fromkeys(SHARED_VALUES)
    switches = dict.fromkeys(SHARED_SWITCHES, False)
    rest = argv[1:]
    while rest:
        opt, eq, value = rest.pop(0).partition("=")
        if opt in switches and not eq and not switches[opt]:
            switches[opt] = True
        elif opt in values and values[opt] is None and (eq or rest):
            values[opt] = value if eq else rest.pop(0)
            if not values[opt] or values[opt].startswith("-") and not eq:
                return None
        else:
            return None
    if not values["--evidence"] or values["--format"] not in (None, *FORMATS):
        return None
    return SimpleNamespace(handler=HANDLER, **{o[2:]: v for o, v in (values | switches).items()})
