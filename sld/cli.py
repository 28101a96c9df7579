"""Command line: argument parsing and dispatch only.

Subcommand modules are imported lazily so that ``sld inspect`` never loads tpm2-pytss, pyroute2 or
prometheus-client (their imports cost more than the inspection itself).
"""

from __future__ import annotations

import importlib
import os
import sys

from sld import __version__
from sld.client import fast_attest, fast_verify
from sld.paths import DEFAULT_CONFIG, DEFAULT_SOCKET

TYPE_CHECKING = False  # typing and argparse cost more than the daemon's answer to a plain ``sld verify``
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator, Sequence
    from types import SimpleNamespace
    from typing import Any

EXIT_CODES = """exit codes:
  0  verified / success
  1  verification failed (mismatch, TXT error, malformed heap, SLRT or log)
  2  usage or configuration error
  3  not a secure-launched platform, or no source readable
  4  TPM unavailable
  5  the TPM's extend lock could not be taken (nothing was extended; run again)
"""

STATUS_EXIT_CODES = """exit codes:
  0  running: the last verdict is verified and current
  1  failed: the last verdict is failed
  2  usage error; the control socket refused us (permission denied)
  3  the last verdict is not-launched, the daemon is degraded because no source is readable, or no daemon answers
  4  no current verdict: degraded (the TPM is unavailable or a verification stopped progressing; the
     last verdict is stale), starting or stopping
  5  degraded: the TPM's extend lock could not be taken (as sld verify exits; the last verdict is stale)
"""

SIM_DIR_HELP = ("where the image, securityfs view and TPM state go (default: $XDG_RUNTIME_DIR/sld-sim, else "
                "/run/sld-sim-UID: per user)")
JSON_HELP = "print one JSON object (schema 1) instead of a table"
VERIFY_HANDLER = "sld.commands.verify:run"
# ``sld verify --evidence``: another machine's quotes and DRTM log, checked here (sld.commands.evidence,
# dispatched to directly: a verifier checking a fleet's evidence never loads this host's configuration)
EVIDENCE_HANDLER = "sld.commands.evidence:run"
SOURCE_HELP = "where platform bytes come from: auto, securityfs[:DIR], devmem, image:PATH, capture:FILE"


def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="auto", metavar="SOURCE", help=f"{SOURCE_HELP} (default auto)")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help=JSON_HELP)


class _ScenarioNames:
    """The simulator's scenario names for ``--scenario`` choices, read only when argparse looks at them
    (a check or a help text): sld.sim.scenarios costs 30 ms, which ``sld inspect`` must not pay."""

    def _names(self) -> tuple[str, ...]:
        from sld.sim.scenarios import SCENARIOS

        return tuple(s.name for s in SCENARIOS)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


SCENARIO_NAMES = _ScenarioNames()


def _sim_command(simsub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                 text: str) -> argparse.ArgumentParser:
    """A ``sld sim`` subcommand that takes a scenario and a structure generation."""
    p = simsub.add_parser(name, help=text)
    p.set_defaults(handler=f"sld.commands.sim:run_{name}")
    p.add_argument("--scenario", required=True, choices=SCENARIO_NAMES, metavar="NAME",
                   help="the scenario to simulate: %(choices)s (`sld sim list` says what each is)")
    p.add_argument("--layout", help="Secure Launch structure generation: v7, v9, v10, v12, v16 (default: the "
                   "scenario's, v16 for most)")
    return p


def _policy_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sld policy create|merge|show|export``: appraisal policies (sld.commands.policy)."""
    pol = sub.add_parser("policy", help="appraisal policies: create on a known-good host, merge, show, export")
    polsub = pol.add_subparsers(dest="policy_command", metavar="POLICYCOMMAND", required=True)
    p = polsub.add_parser("create", help="describe this host's verified launch, part by part, as a policy "
                          "(read as a local `sld verify --mode validate` reads it, with the same defaults)")
    p.set_defaults(handler="sld.commands.policy:run_create", mode=None, policy=None)
    p.add_argument("--source", metavar="SOURCE", help=f"{SOURCE_HELP} (default: the configuration's [source] spec)")
    p.add_argument("--tcti", help="tpm2-tss TCTI string (default: the configuration's [tpm] tcti)")
    p.add_argument("--locality", type=int, choices=range(5), metavar="N", help="ask the TCTI for locality N "
                   "(default: the configuration's [tpm] locality)")
    p.add_argument("--config", metavar="PATH", help=f"configuration file (default {DEFAULT_CONFIG} if present)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the policy (platform and OS parts)")
    p.add_argument("--host", metavar="FILE", help="where the host-unique parts go (default FILE.d/host.toml)")
    p = polsub.add_parser("merge", help="one policy allowing what either allows (roll out an update)")
    p.set_defaults(handler="sld.commands.policy:run_merge")
    p.add_argument("policies", nargs=2, metavar="POLICY", help="the two policies (each with its drop-ins)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where the merged policy is written "
                   "(the merged drop-ins of each name go to FILE.d/, as `sld policy create` writes them)")
    p.add_argument("--loosen", action="store_true", help="when the policies differ in a posture setting "
                   "(allow_extra, the [sinit] minimums), take the looser one instead of refusing (exit 1)")
    p = polsub.add_parser("show", help="a policy (and its drop-ins) as a table")
    p.set_defaults(handler="sld.commands.policy:run_show")
    p.add_argument("policy", metavar="POLICY", help="the policy file (its drop-ins POLICY.d/*.toml are read too)")
    _add_json(p)
    p = polsub.add_parser("export", help="a policy in another verifier's format")
    p.set_defaults(handler="sld.commands.policy:run_export")
    p.add_argument("policy", metavar="POLICY", help="the policy file (its drop-ins POLICY.d/*.toml are read too)")
    p.add_argument("--format", choices=("keylime",), required=True, help="keylime: its tpm_policy JSON")
    from sld.formats.names import DIGEST_SIZE

    p.add_argument("--bank", default="sha256", choices=tuple(DIGEST_SIZE),
                   help="the bank the verifier quotes: %(choices)s (default sha256)")


def _verify_options() -> tuple[tuple[str, dict[str, Any]], ...]:
    """``sld verify``'s own options and its ``--evidence`` ones, declared once: :func:`_verify_parser` gives
    them to argparse and :func:`_read_verify` reads a command line made only of them."""
    from sld.vocab import Mode

    return (
        ("--source", {"metavar": "SOURCE", "help": f"{SOURCE_HELP} (default: the configuration's [source] spec)"}),
        ("--json", {"action": "store_true", "help": JSON_HELP}),
        ("--tcti", {"help": "tpm2-tss TCTI string (default: the configuration's [tpm] tcti; the simulator prints "
                    "its own)"}),
        ("--locality", {"type": int, "choices": range(5), "metavar": "N",
                        "help": "ask the TCTI for locality N before any command (swtpm/mssim TCTIs; PCR17-22 need 2; "
                                "default: the configuration's [tpm] locality)"}),
        ("--mode", {"choices": tuple(Mode),
                    "help": "validate never extends; auto/perform extend events logged but not extended in the "
                            "SLAUNCH window, exactly once, under the TPM's extend lock (default: the "
                            "configuration's [verify] mode)"}),
        ("--policy", {"metavar": "FILE", "help": "appraisal policy (`sld policy create`; drop-ins FILE.d/*.toml) "
                      "or the older golden PCR values and required event digests (default: the configuration's "
                      "[verify] policy)"}),
        ("--state-dir", {"metavar": "DIR", "help": "compare the SINIT with the one this host last launched with, "
                         "remembered in DIR, and remember this one (default: the configuration's [verify] state_dir, "
                         "as the daemon; none without a configuration file)"}),
        ("--config", {"metavar": "PATH", "help": "configuration file of a local verification (default "
                      f"{DEFAULT_CONFIG}; when that does not exist, built-in defaults)"}),
        ("--local", {"action": "store_true", "help": "verify in this process even if a daemon answers"}),
        ("--socket", {"default": DEFAULT_SOCKET, "metavar": "PATH",
                      "help": f"the daemon's control socket (default {DEFAULT_SOCKET})"}),
        ("--evidence", {"metavar": "FILE", "help": "verify this evidence file (sld attest) instead of this host"}),
        ("--ak", {"metavar": "PEM", "help": "(evidence) the AK public key the verifier trusts"}),
        ("--nonce", {"metavar": "HEX", "help": "(evidence) the nonce the verifier gave sld attest"}),
        ("--previous", {"metavar": "FILE", "help": "(evidence) earlier evidence of that host: the new one must be "
                        "newer (TPM clock, reset and restart counts)"}),
        ("--format", {"choices": ("text", "json", "ear"), "help": "(evidence) text, json (as --json) or an EAT "
                      "Attestation Result (draft-ietf-rats-ear)"}),
    )


def _verify_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sld verify``: the daemon answers a plain one; otherwise the configuration file's keys are the defaults."""
    import argparse

    ver = sub.add_parser("verify", help="verify the dynamic launch: platform structures, event log and TPM PCRs",
                         description="With no option but --json and --socket the running daemon verifies and\n"
                         "answers (a degraded daemon is reported with its state and reason, and nothing is\n"
                         "verified here). With --local or any other option, or with no daemon answering, sld\n"
                         "verifies in this process with the daemon's configuration file (--config), the\n"
                         "options over its keys, and says so on stderr.",
                         epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ver.set_defaults(handler=VERIFY_HANDLER)

    class Evidence(argparse.Action):
        """``--evidence FILE`` also picks the handler: another host's evidence, not this host's launch."""

        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                     option_string: str | None = None) -> None:
            namespace.evidence = values
            namespace.handler = EVIDENCE_HANDLER

    for option, spec in _verify_options():
        ver.add_argument(option, **(spec | {"action": Evidence} if option == "--evidence" else spec))


def _read_verify(argv: Sequence[str]) -> SimpleNamespace | None:
    """``verify`` and only its own options (:func:`_verify_options`, the evidence ones included), as the
    namespace argparse makes of them, read by :func:`sld.argv.read` (None for what it leaves to argparse). A
    cold local verification so skips importing argparse and building its parser (~10 ms,
    benchmarks/verify_cold.py), and so does a verifier checking a fleet's evidence one cold process per host
    (benchmarks/verify_evidence.py)."""
    if argv[:1] != ["verify"]:
        return None
    from types import SimpleNamespace

    from sld.argv import attribute, read

    values = read(argv[1:], dict(_verify_options()))
    if values is None:
        return None
    handler = VERIFY_HANDLER if values["--evidence"] is None else EVIDENCE_HANDLER  # as the Evidence action sets it
    return SimpleNamespace(command="verify", handler=handler,
                           **{attribute(option): value for option, value in values.items()})


def _add_ak_options(p: argparse.ArgumentParser) -> None:
    """The TPM and AK options ``sld ak create|activate`` and ``sld attest`` share."""
    p.add_argument("--tcti", help="tpm2-tss TCTI string (default: the configuration's [tpm] tcti)")
    p.add_argument("--handle", type=lambda text: int(text, 0), metavar="HANDLE",
                   help="the AK's persistent handle (default: the configuration's [attest] ak_handle, 0x81010002)")
    p.add_argument("--config", metavar="PATH", help=f"configuration file (default {DEFAULT_CONFIG})")


def _ak_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sld ak create|activate`` (issue 14: the attestation key a remote verifier trusts)."""
    akp = sub.add_parser("ak", help="the attestation key: create it under the EK, answer a verifier's challenge")
    aksub = akp.add_subparsers(dest="ak_command", metavar="AKCOMMAND", required=True)
    p = aksub.add_parser("create", help="create a restricted signing AK under the EK and persist it; print its "
                         "PEM and name, the EK public key and certificate")
    p.set_defaults(handler="sld.commands.ak:run_create")
    _add_ak_options(p)
    p.add_argument("--alg", choices=("rsa", "ecc"), default="rsa",
                   help="rsa: RSA-2048 RSASSA-SHA256 (default); ecc: P-256 ECDSA-SHA256")
    p.add_argument("--replace", action="store_true", help="evict a key already at the handle")
    _add_json(p)
    p = aksub.add_parser("activate", help="answer a TPM2_MakeCredential challenge (tpm2_makecredential -o FILE) "
                         "for this TPM's EK and the AK: print the secret")
    p.set_defaults(handler="sld.commands.ak:run_activate")
    _add_ak_options(p)
    p.add_argument("--credential", required=True, metavar="FILE",
                   help="the verifier's challenge, as tpm2_makecredential -o wrote it")


def _attest_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sld attest`` (issue 14: evidence for a remote verifier)."""
    att = sub.add_parser("attest", help="evidence for a remote verifier: AK-signed quotes of PCR17-22 in every "
                         "bank, the DRTM log, and (unauthenticated) platform context",
                         description="With no option but --nonce, -o and --socket the running daemon attests "
                         "(no root needed); otherwise, or with no daemon answering, this process does.")
    att.set_defaults(handler="sld.commands.attest:run")
    att.add_argument("--nonce", required=True, metavar="HEX", help="the verifier's nonce, 16..64 bytes")
    att.add_argument("-o", "--output", metavar="FILE", help="write the evidence here (default stdout)")
    att.add_argument("--source", metavar="SOURCE", help=f"{SOURCE_HELP} (default: the configuration's [source] spec)")
    _add_ak_options(att)
    att.add_argument("--locality", type=int, choices=range(5), metavar="N", help="ask the TCTI for locality N")
    att.add_argument("--local", action="store_true", help="attest in this process even if a daemon answers")
    att.add_argument("--socket", default=DEFAULT_SOCKET, metavar="PATH",
                     help=f"the daemon's control socket (default {DEFAULT_SOCKET})")


def _inspect_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sld inspect regs|heap|slrt|log``."""
    insp = sub.add_parser("inspect", help="decode TXT registers, heap, SLRT or the DRTM event log")
    insp.set_defaults(handler="sld.commands.inspect_log:run")  # the log part, import-light
    insp.add_argument("what", choices=("regs", "heap", "slrt", "log"),
                      help="regs: the TXT registers; heap: the TXT heap tables; slrt: the Secure Launch Resource "
                           "Table; log: the DRTM event log")
    _add_source(insp)
    _add_json(insp)
    insp.add_argument("--file", metavar="PATH", help="(log) read a bare event log file instead of a source")
    insp.add_argument("--pcrs", action="store_true", help="(log) add the PCR values replayed from the log")


def _daemon_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sld daemon`` (units/sld.service)."""
    dmn = sub.add_parser("daemon", help="run the service: verify every interval, metrics, control socket")
    dmn.set_defaults(handler="sld.commands.service:run_daemon")
    dmn.add_argument("--config", metavar="PATH", help=f"configuration file (default {DEFAULT_CONFIG})")


def _capture_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sld capture``: everything sld reads, in one file for a bug report."""
    cap = sub.add_parser("capture", help="save everything sld reads (securityfs files, registers, heap, SLRT, log) "
                         "into one small file for a bug report; --source capture:FILE reads it back")
    cap.set_defaults(handler="sld.commands.capture:run")
    _add_source(cap)
    cap.add_argument("-o", "--output", required=True, metavar="FILE", help="the capture file to write (a gzip'd "
                     "tar, replaced atomically; never written through a link)")


def _quarantine_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sld quarantine status|apply|lift``."""
    qu = sub.add_parser("quarantine", help="the network quarantine: status, apply, lift --force")
    qu.set_defaults(handler="sld.commands.quarantine:run")
    qu.add_argument("action", choices=("status", "apply", "lift"),
                    help="status: what is installed; apply: install it now; lift: remove it (needs --force)")
    qu.add_argument("--config", metavar="PATH", help=f"configuration file (default {DEFAULT_CONFIG})")
    qu.add_argument("--interface", action="append", metavar="IFNAME", help="instead of [quarantine] interfaces")
    qu.add_argument("--force", action="store_true", help="(lift) remove it although no verification passed")
    _add_json(qu)


def _status_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sld status``: the running daemon's state."""
    import argparse

    st = sub.add_parser("status", help="the running daemon's state, last verdict and current error",
                        epilog=STATUS_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    st.set_defaults(handler="sld.commands.service:run_status")
    st.add_argument("--socket", default=DEFAULT_SOCKET, metavar="PATH",
                    help=f"the daemon's control socket (default {DEFAULT_SOCKET})")
    _add_json(st)


def _sim_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sld sim list|build|up|down|securityfs``: the simulated platform."""
    sim = sub.add_parser("sim", help="the simulated TXT platform: scenarios, images, securityfs views")
    simsub = sim.add_subparsers(dest="sim_command", metavar="SIMCOMMAND", required=True)
    sim_list = simsub.add_parser("list", help="every scenario with its description and expected verdict")
    sim_list.set_defaults(handler="sld.commands.sim:run_list")
    _add_json(sim_list)
    p = _sim_command(simsub, "build", "write a physical-memory image of a scenario and its manifest (IMAGE.json)")
    p.add_argument("-o", "--output", required=True, metavar="IMAGE",
                   help="the sparse physical-memory image to write (its manifest goes to IMAGE.json)")
    p = _sim_command(simsub, "up", "build a scenario's image and start a swtpm in the state its launch leaves")
    p.add_argument("--dir", help=SIM_DIR_HELP)
    p.add_argument("--daemon-config", metavar="FILE", help="also write a sld.toml for `sld daemon --config FILE` "
                   "that verifies this platform (own control socket, free metrics port) and print its commands")
    _add_json(p)
    p = simsub.add_parser("down", help="stop the simulated platform's swtpm")
    p.set_defaults(handler="sld.commands.sim:run_down")
    p.add_argument("--dir", help=SIM_DIR_HELP)
    p = _sim_command(simsub, "securityfs", "write the securityfs view of a scenario (and its manifest) into DIR")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="the directory to write the slaunch/ view and manifest.json into")


# Each command's subparser, in the order ``sld --help`` lists them.
COMMANDS = {"inspect": _inspect_parser, "verify": _verify_parser, "daemon": _daemon_parser,
            "capture": _capture_parser, "quarantine": _quarantine_parser, "status": _status_parser,
            "policy": _policy_parser, "ak": _ak_parser, "attest": _attest_parser, "sim": _sim_parser}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command and option of sld (also the source of sld(8) and the completions: packaging/gen_docs.py);
    for a ``command`` sld has, that command's subparser alone: a cold ``sld verify`` never builds the
    others' (nor imports what their choices need), and ``sld daemon`` keeps none of them for its lifetime."""
    import argparse  # here: a plain ``sld verify`` answered by the daemon never builds a parser

    parser = argparse.ArgumentParser(
        prog="sld",
        description="Secure Launch daemon: verifies Intel TXT dynamic launches (Linux Secure Launch).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sld {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for builder in [COMMANDS[command]] if command in COMMANDS else COMMANDS.values():
        builder(sub)
    return parser


def _dispatch(args: argparse.Namespace | SimpleNamespace) -> int:
    module_name, func_name = args.handler.split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    return int(handler(args))


def main(argv: Sequence[str] | None = None) -> int:
    """The running daemon's answer to a plain ``sld verify`` or ``sld attest`` when it gives one (sld.client);
    a ``sld verify`` of this host or of another's evidence read without building the parser (:func:`_read_verify`);
    else :func:`run`."""
    args = list(sys.argv[1:] if argv is None else argv)
    code = fast_attest(args) if args[:1] == ["attest"] else fast_verify(args)
    if code is not None:
        return code
    fast = _read_verify(args)
    return guarded(fast) if fast is not None else run(args)


def run(argv: Sequence[str]) -> int:
    """Parse ``argv`` and run its command, errors reported as :func:`guarded` does."""
    return guarded(build_parser(argv[0] if argv else None).parse_args(argv))


def guarded(args: argparse.Namespace | SimpleNamespace) -> int:
    """The subcommand's exit code; its failures as one line on stderr and their exit code, never a traceback."""
    from sld.errors import SldError

    try:
        return _dispatch(args)
    except SldError as err:
        print(f"sld: {err}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # the last line of defence: a bug must not look like a verdict
        if os.environ.get("SLD_DEBUG"):
            raise
        print(f"sld: internal error: {type(err).__name__}: {err} (SLD_DEBUG=1 for a traceback)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
