"""``sld policy create|merge|show|export``: appraisal policies as files (the I/O around sld.appraisal)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import BinaryIO

from sld.appraisal.create import create, render
from sld.appraisal.files import layers, load
from sld.appraisal.merge import loosened, merge
from sld.appraisal.model import Group, Policy
from sld.errors import ConfigError
from sld.formats.names import event_type_name
from sld.text import count
from sld.vocab import Mode, Result


def _write(path: str, text: str) -> None:
    """Write a policy file with the one safe writer (a fresh O_EXCL file beside it, renamed over it), so a
    link or file planted at PATH or at any temporary name is replaced, never written through."""
    from sld.platform.files import replace_file

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot make the policy's directory: {err.strerror}", file=path) from None

    def fill(f: BinaryIO) -> None:
        f.write(text.encode())

    replace_file(path, fill)


def run_create(args: argparse.Namespace) -> int:
    """Verify this host as ``sld verify`` does (never extending), then describe what it launched."""
    from sld.commands.verify import settings
    from sld.config import load as load_config
    from sld.tpm import Tpm
    from sld.verify import verify_source_snapshot

    use = settings(args, load_config(args.config))
    with Tpm(use.tcti, locality=use.locality, timeout=use.timeout) as tpm:
        verdict, snap = verify_source_snapshot(use.source, tpm, mode=Mode.VALIDATE)
    if verdict.result != Result.VERIFIED or snap.log is None:
        print(f"sld: refusing to make a policy from a host that does not verify: {verdict.summary}", file=sys.stderr)
        return 1
    policy = create(snap.log, snap.acm)
    host = args.host or str(Path(f"{args.output}.d") / "host.toml")
    caps = snap.heap.os_sinit_data.fields.get("capabilities") if snap.heap else None
    notes = {"os-sinit-caps": f"OsSinitData.Capabilities was 0x{caps:x} on the golden host"} if caps else {}
    _write(args.output, render(policy, (Group.PLATFORM, Group.OS), notes=notes))
    written = [args.output]
    if any(p.group == Group.HOST for p in policy.parts):
        _write(host, render(policy, (Group.HOST,), head=False))
        written.append(host)
    where = "from the ACM header at SINIT.BASE" if snap.acm else "on HASH_START alone (no ACM header readable)"
    print(f"wrote {' and '.join(written)}: {count(len(policy.parts), 'part')} from {verdict.source}; "
          f"SINIT identified {where}")
    return 0


def _posture_differences(a: Policy, b: Policy, names: tuple[str, str]) -> list[str]:
    """Each posture setting A and B differ in, as a sentence naming both values (sld.appraisal.merge.loosened)."""
    return [f"{key} is {va} in {names[0]} and {vb} in {names[1]}"
            for key, va, vb in (*loosened(a, b), *((k, y, x) for k, x, y in loosened(b, a)))]


def run_merge(args: argparse.Namespace) -> int:
    """``sld policy merge A B -o C``: C allows what A or B allows, in the structure ``create`` writes.

    C holds the merged main files; each drop-in name of A.d or B.d becomes C.d/NAME allowing what both
    of that name allow, so host-unique parts stay per host. A posture setting (allow_extra, the SINIT
    minimums) that differs is refused (exit 1) unless ``--loosen`` takes the looser one.
    """
    a_path, b_path = args.policies
    a, b = layers(a_path), layers(b_path)
    differ = _posture_differences(a.policy, b.policy, (a_path, b_path))  # each checked with its drop-ins
    if differ and not args.loosen:
        for line in differ:
            print(f"sld: refusing to merge: {line}; the merged policy would take the looser value for every host. "
                  "Make them equal in one of the files, or pass --loosen to take the looser one", file=sys.stderr)
        return 1
    main = merge(a.main, b.main)
    written = [args.output]
    texts = {args.output: render(main)}
    named = {p.name for p in main.parts}  # the parts C has, main file and drop-ins together
    for name in sorted(a.dropins.keys() | b.dropins.keys()):
        found = [layer.dropins[name] for layer in (a, b) if name in layer.dropins]
        joined = main
        for dropin in found:
            joined = merge(joined, dropin)
        own = {part.name for dropin in found for part in dropin.parts}
        path = str(Path(f"{args.output}.d") / name)
        texts[path] = render(Policy(tuple(p for p in joined.parts if p.name in own)), head=False)
        written.append(path)
        named |= own
    for path, text in texts.items():
        _write(path, text)
    print(f"wrote {' and '.join(written)}: {count(len(named), 'part')} allowing what "
          f"{a_path} or {b_path} allows" + (" (posture loosened: " + "; ".join(differ) + ")" if differ else ""))
    return 0


def _rows(policy: Policy) -> list[tuple[str, ...]]:
    return [(p.name, p.group, f"PCR{p.pcr}", p.label, bank, digest.hex())
            for p in policy.parts for bank, values in p.digests.items() for digest in values]


def run_show(args: argparse.Namespace) -> int:
    """``sld policy show FILE``: one row per allowed digest of each part, or the JSON form."""
    from sld.report import dump_json, table

    policy = load(args.policy)
    if args.json:
        print(dump_json("policy", {"path": policy.path, "allow_extra": policy.allow_extra, "sinit": policy.sinit,
                                   "parts": policy.parts, "pcrs": policy.pcrs, "events": policy.events}))
        return 0
    sinit = policy.sinit
    head = "no [sinit] section" if sinit is None else ("SINIT: no ACM header; identified by HASH_START" if not
                                                      sinit.header else f"SINIT: TxtSvn >= {sinit.txt_svn}, "
                                                      f"SeSvn >= {sinit.se_svn}, built {sinit.date:08x}")
    if policy.parts:
        print(f"{policy.path}: {count(len(policy.parts), 'part')}; {head}; unknown events "
              f"{'allowed' if policy.allow_extra else 'fail'}")
        print(table(_rows(policy), ("PART", "GROUP", "PCR", "EVENT", "BANK", "ALLOWED DIGEST")))
    else:
        print(f"{policy.path}: the older form (golden PCR values and required events)")
    for bank, values in policy.pcrs.items():
        for pcr, value in sorted(values.items()):
            print(f"golden PCR{pcr} {bank} {value.hex()}")
    for ev in policy.events:
        where = f"PCR{ev.pcr}" if ev.pcr is not None else "any PCR"
        kind = event_type_name(ev.type) if ev.type is not None else "any type"
        print(f"required event in {where}, {kind}: " + ", ".join(f"{b} {d.hex()}" for b, d in ev.digests.items()))
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``sld policy export --format keylime FILE``: Keylime's tpm_policy JSON on stdout."""
    from sld.appraisal.keylime import refusal, tpm_policy

    policy = load(args.policy)
    why = refusal(policy)
    if why:
        print(f"sld: refusing to export {args.policy} for Keylime: {why}", file=sys.stderr)
        return 1
    print(json.dumps(tpm_policy(policy, args.bank)))
    return 0
