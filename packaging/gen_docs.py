"""Generate sld(8), sld.toml(5) and the bash/zsh completions from their one source: the argparse
parser (commands, options, exit codes), the config dataclasses + conf/sld.toml comments (keys), the
check catalogue and the metrics collector (what /metrics serves). Run: python3 packaging/gen_docs.py [OUTDIR]
(an interpreter without sld's dependencies hands over to the checkout's .venv, made by scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _with_dependencies() -> None:
    """The collector (metric names) needs prometheus-client, and a verdict construct: ``python3`` without
    them (Debian's or pyenv's) re-runs this script with the checkout's venv."""
    try:
        import construct  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as err:
        venv = ROOT / ".venv"
        if Path(sys.prefix) == venv or not (venv / "bin" / "python").exists():
            sys.exit(f"gen_docs: {err.name} is missing here and there is no {venv} (bash scripts/setup.sh makes it)")
        os.execv(venv / "bin" / "python", [str(venv / "bin" / "python"), *sys.argv])


_with_dependencies()

from sld import __version__  # noqa: E402
from sld.appraisal import __doc__ as POLICY_DOC  # noqa: E402
from sld.checks import CATALOGUE  # noqa: E402
from sld.cli import EXIT_CODES, build_parser  # noqa: E402
from sld.config import Config  # noqa: E402


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("-", "\\-").replace("'", "\\(aq")


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser, str]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                full = f"{prefix}{name}"
                nested = _subcommands(sub, full + " ")
                out += nested or [(full, sub, helps.get(name) or "")]
    return out


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    rows = []
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if a.option_strings:
            name = ", ".join(a.option_strings) + (f" {a.metavar or a.dest.upper()}" if a.nargs != 0 else "")
        else:
            name = a.dest.upper() + (f" ({'|'.join(a.choices)})" if a.choices else "")
        rows.append((name, argparse.HelpFormatter("sld")._expand_help(a) if a.help else ""))
    return rows


def _metrics() -> list[tuple[str, str, str]]:
    """(name, type, help) of every family ``/metrics`` serves, as the daemon's own registry renders them.

    The collector is svc's: it renders a published status at scrape time, so here it renders one with a
    verdict (every family appears, with or without samples) and the names are read from its exposition,
    exactly as a scrape shows them (``_total``, ``_info``).
    """
    from prometheus_client import generate_latest

    from sld.service.metrics import registry_for
    from sld.service.state import DaemonStatus
    from sld.verify import Verdict
    from sld.vocab import DaemonState, Mode, Result

    verdict = Verdict(Result.VERIFIED, "", "", Mode.AUTO, (), (), (), registers={"ERRORCODE": 0})
    status = DaemonStatus(state=DaemonState.RUNNING, verdict=verdict, verdict_time=1.0, last_success=1.0)
    return exposition(generate_latest(registry_for(lambda: status)).decode())


def exposition(text: str) -> list[tuple[str, str, str]]:
    """(name, type, help) from the ``# HELP``/``# TYPE`` lines of a Prometheus text exposition."""
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))
    return [(name, kind, helps.get(name, "")) for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)]


def _roff(doc: str) -> list[str]:
    """A docstring's paragraphs as roff: prose as .PP, indented blocks verbatim (.nf/.fi)."""
    out = []
    for para in doc.strip().split("\n\n"):
        verbatim = para.startswith("    ")
        out += [".nf", *(_esc(line[4:]) for line in para.splitlines()), ".fi"] if verbatim else \
            [".PP", _esc(" ".join(para.split()))]
    return out


def man_sld() -> str:
    parser = build_parser()
    lines = [f'.TH SLD 8 "" "sld {__version__}" "System Administration"', ".SH NAME",
             "sld \\- Secure Launch daemon: verifies Intel TXT dynamic launches", ".SH SYNOPSIS",
             ".B sld", "\\fICOMMAND\\fR [\\fIOPTIONS\\fR]", ".SH DESCRIPTION", _esc(parser.description or ""),
             ".SH COMMANDS"]
    for name, sub, text in _subcommands(parser):
        lines += [".TP", f".B sld {_esc(name)}", _esc(text)]
        for opt, helptext in _options(sub):
            lines += [".RS", ".TP", f".B {_esc(opt)}", _esc(helptext), ".RE"]
    lines += [".SH POLICY", *_roff(POLICY_DOC or "")]
    lines += [".SH CHECKS", "Each verdict is made of these checks (ids as in JSON, metrics and the journal):"]
    for check in CATALOGUE:
        lines += [".TP", f".B {_esc(check.id)}", _esc(f"{check.title}. {check.doc}")]
    lines += [".SH METRICS", "Served by \\fBsld daemon\\fR (see \\fBsld.toml\\fR(5), section metrics):"]
    for name, kind, text in _metrics():
        lines += [".TP", f".B {_esc(name)}", _esc(f"{kind}: {text.replace(chr(92) + 'n', ' ')}")]
    lines += [".SH EXIT STATUS"]
    for line in EXIT_CODES.strip().splitlines()[1:]:
        code, text = line.strip().split(None, 1)
        lines += [".TP", f".B {code}", _esc(text)]
    lines += [".SH FILES", "/etc/sld/sld.toml, /run/sld/control.sock, "
              "/run/sld/extend:TPM.lock (with the abstract socket @sld-extend:TPM: the extend lock of one TPM)",
              ".SH SEE ALSO",
              "\\fBsld.toml\\fR(5), \\fBjournalctl\\fR(1), \\fBtpm2_pcrread\\fR(1), \\fBtxt-stat\\fR(8)"]
    return "\n".join(lines) + "\n"


def man_toml() -> str:
    comments = _key_comments((ROOT / "conf" / "sld.toml").read_text())
    lines = [f'.TH SLD.TOML 5 "" "sld {__version__}" "File Formats"', ".SH NAME",
             "sld.toml \\- configuration of the Secure Launch daemon", ".SH DESCRIPTION",
             "TOML read by \\fBsld daemon\\fR at start-up and on SIGHUP. Unknown keys, wrong types and bad values "
             "are errors that name the key (exit status 2); a bad file on reload is refused and the old one kept."]
    hints = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        if section.name == "path":
            continue
        lines += [".SH", f"[{section.name}]"]
        cls = hints[section.name]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            shown = "(unset)" if default is None else _toml(default)
            lines += [".TP", f".B {f.name}", _esc(f"default {shown}. {comments.get((section.name, f.name), '')}")]
    lines += [".SH SEE ALSO", "\\fBsld\\fR(8)"]
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    """A default as it is written in sld.toml: ``true``, ``60``, ``"auto"``, ``["failed"]``, ``{}``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: the same escapes as JSON's
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {value!r}")


def _key_comments(text: str) -> dict[tuple[str, str], str]:
    """The comment lines above each ``#key =`` in conf/sld.toml, as that key's documentation."""
    out, section, pending = {}, "", []
    for line in text.splitlines():
        if m := re.match(r"^\[(\w+)\]", line):
            section, pending = m.group(1), []
        elif m := re.match(r"^#(\w+) =", line):
            out[(section, m.group(1))] = " ".join(pending)
            pending = []
        elif line.startswith("# ") and section:
            pending.append(line[2:])
        elif not line.strip():
            pending = []
    return out


def bash_completion() -> str:
    parser = build_parser()
    subs = _subcommands(parser)
    top = sorted({name.split()[0] for name, _, _ in subs})
    cases = []
    for name, sub, _ in subs:
        words = " ".join(o for a in sub._actions for o in a.option_strings) + " " + " ".join(
            c for a in sub._actions if not a.option_strings and a.choices for c in a.choices)
        cases.append(f'        "{name}") opts="{words.strip()}" ;;')
    groups: dict[str, list[str]] = {}  # sim, policy, ak: commands whose second word is a subcommand
    for name, _, _ in subs:
        if " " in name:
            groups.setdefault(name.split()[0], []).append(name.split()[1])
    nested = "\n".join(f'        {group}) [[ $COMP_CWORD -eq 2 ]] && '
                       f'{{ COMPREPLY=($(compgen -W "{" ".join(sorted(words))}" -- "$cur")); return; }}\n'
                       f'            cmd="{group} ${{COMP_WORDS[2]}}" ;;' for group, words in groups.items())
    scenarios = " ".join(next(a.choices for _, p, _ in subs for a in p._actions if "--scenario" in a.option_strings))
    return f"""# bash completion for sld (generated by packaging/gen_docs.py)
_sld() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} cmd="${{COMP_WORDS[1]}}" opts
    if [[ $COMP_CWORD -eq 1 ]]; then COMPREPLY=($(compgen -W "{' '.join(top)} --help --version" -- "$cur")); return; fi
    if [[ ${{COMP_WORDS[COMP_CWORD-1]}} == --scenario ]]; then
        COMPREPLY=($(compgen -W "{scenarios}" -- "$cur")); return
    fi
    case "$cmd" in
{nested}
    esac
    case "$cmd" in
{chr(10).join(cases)}
        *) opts="" ;;
    esac
    COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
}}
complete -F _sld sld
"""


def zsh_completion() -> str:
    return "#compdef sld\n# zsh completion for sld (generated): reuses the bash completion\n" \
           "autoload -U bashcompinit && bashcompinit\n" + bash_completion().split("\n", 1)[1]


OUTPUTS = {"sld.8": man_sld, "sld.toml.5": man_toml, "sld.bash-completion": bash_completion, "_sld": zsh_completion}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "packaging" / "generated"
    out.mkdir(parents=True, exist_ok=True)
    for name, make in OUTPUTS.items():
        (out / name).write_text(make())


if __name__ == "__main__":
    main()
