"""Appraisal policies: made from the simulator's clean log, read back, merged, checked part by part."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sld.appraisal.check import Problem, appraise
from sld.appraisal.create import create, render
from sld.appraisal.files import layers, load, parse_text
from sld.appraisal.keylime import tpm_policy
from sld.appraisal.merge import merge
from sld.appraisal.model import Group, Policy, SinitPolicy, from_toml
from sld.errors import ConfigError
from sld.formats.eventlog import EventLog, parse_log
from sld.formats.tcg import NewEvent, build_crypto_agile
from sld.replay import replay
from sld.sim.builder import build_platform


def log_of(name: str, layout: str | None = None) -> EventLog:
    return parse_log(build_platform(name, layout).log)


@pytest.fixture(scope="module")
def clean() -> Policy:
    return create(log_of("clean"), None)


def roundtrip(policy: Policy) -> Policy:
    return merge(parse_text(render(policy, (Group.PLATFORM, Group.OS)), "main.toml"),
                 parse_text(render(policy, (Group.HOST,), head=False), "host.toml"))


def test_created_policy_reads_back_and_approves_its_own_launch(clean: Policy) -> None:
    back = roundtrip(clean)
    assert [p.name for p in back.parts] == [p.name for p in clean.parts]
    assert back.parts == clean.parts
    assert appraise(back, log_of("clean")) == ()
    groups = {p.name: p.group for p in clean.parts}
    assert groups["sinit"] == Group.PLATFORM and groups["mle"] == Group.OS and groups["cmdline"] == Group.HOST


def test_every_part_has_a_comment_saying_what_it_is(clean: Policy) -> None:
    text = render(clean)
    for part in clean.parts:
        assert f"# {part.name}: " in text


@pytest.mark.parametrize(("scenario", "part"), [("wrong-kernel", "mle"), ("changed-cmdline", "cmdline"),
                                                ("downgraded-sinit", "sinit"), ("no-lcp", "lcp-control"),
                                                ("no-stm", "stm")])
def test_a_changed_part_is_named_with_both_digests_in_full(clean: Policy, scenario: str, part: str) -> None:
    findings = appraise(clean, log_of(scenario))
    assert [(f.part, f.problem) for f in findings] == [(part, Problem.DIGEST)] * 2  # sha1 and sha256
    sha256 = next(f for f in findings if "sha256" in f.found)
    assert sha256.found["sha256"] not in sha256.expected["sha256"]
    assert sha256.expected["sha256"][0] in sha256.detail and sha256.found["sha256"] in sha256.detail
    assert len(sha256.found["sha256"]) == 64 and f"event {sha256.event}" in sha256.detail


def test_capped_digests_are_not_measured_never_a_match(clean: Policy) -> None:
    findings = appraise(clean, log_of("capped-bank"))
    assert {f.problem for f in findings} == {Problem.NOT_MEASURED}
    assert {f.part for f in findings} == {"slr-table", "boot-params", "cmdline", "efi-memmap", "initrd"}
    assert all(set(f.found) == {"sha256"} for f in findings)


def test_missing_duplicated_out_of_order_and_unknown_events(clean: Policy) -> None:
    log = log_of("clean")
    parts = list(clean.parts)
    boot, cmdline = (next(i for i, p in enumerate(parts) if p.name == n) for n in ("boot-params", "cmdline"))
    parts[boot], parts[cmdline] = parts[cmdline], parts[boot]
    swapped = {(f.part, f.problem) for f in appraise(replace(clean, parts=tuple(parts)), log)}
    assert (Problem.OUT_OF_ORDER in {p for _, p in swapped}) and swapped <= {("boot-params", Problem.OUT_OF_ORDER),
                                                                               ("cmdline", Problem.OUT_OF_ORDER)}
    without = replace(clean, parts=tuple(p for p in clean.parts if p.name != "initrd"))
    assert [(f.part, f.problem, f.text) for f in appraise(without, log)] == \
        [(None, Problem.UNKNOWN, "Measured Kernel initrd")]
    assert appraise(replace(without, allow_extra=True), log) == ()
    extra = next(p for p in clean.parts if p.name == "mle")
    doubled = replace(clean, parts=(*clean.parts, replace(extra, name="mle-again")))
    assert [(f.part, f.problem) for f in appraise(doubled, log)] == [("mle-again", Problem.MISSING)]
    log20 = log_of("partial-extend", "v12")  # 20 window events: setup_data parts repeat, each its own part
    assert appraise(create(log20, None), log20) == ()
    assert {(f.part, f.problem) for f in appraise(create(log20, None), log)} >= {("setup-data", Problem.MISSING)}


def test_an_event_logged_twice_is_duplicated_naming_the_second(clean: Policy) -> None:
    log = log_of("clean")
    records = [NewEvent(e.pcr, e.type, e.digests, e.data) for e in log.events[len(log.leading):]]
    at = next(i for i, r in enumerate(records) if r.data.startswith(b"Measured Kernel command line"))
    twice = parse_log(build_crypto_agile(log.banks, [*records[: at + 1], *records[at:]]))
    findings = appraise(clean, twice)
    second = twice.events[len(log.leading) + at + 1]
    assert [(f.part, f.problem, f.event) for f in findings] == [("cmdline", Problem.DUPLICATED, second.index)]
    assert all(second.digests[bank].hex() in findings[0].detail for bank in log.banks)
    assert f"event {second.index} (PCR18 SLAUNCH 'Measured Kernel command line')" in findings[0].detail


def test_merge_allows_both_and_keeps_measurement_order(clean: Policy) -> None:
    other = create(log_of("wrong-kernel"), None)
    merged = merge(clean, other)
    assert [p.name for p in merged.parts] == [p.name for p in clean.parts]
    assert len(merged.part("mle").digests["sha256"]) == 2 and len(merged.part("sinit").digests["sha256"]) == 1
    assert appraise(merged, log_of("clean")) == () and appraise(merged, log_of("wrong-kernel")) == ()
    clash = replace(other, parts=tuple(replace(p, pcr=18) if p.name == "mle" else p for p in other.parts))
    with pytest.raises(ConfigError, match="mle"):
        merge(clean, clash)


def test_keylime_values_are_the_replay_of_each_allowed_combination(clean: Policy) -> None:
    expected = replay(log_of("clean")).values["sha256"]
    exported = tpm_policy(clean)
    assert exported == {"17": [expected[17].hex()], "18": [expected[18].hex()]}
    merged = merge(clean, create(log_of("wrong-kernel"), None))
    values = tpm_policy(merged)["17"]
    assert len(values) == 2 and replay(log_of("wrong-kernel")).values["sha256"][17].hex() in values
    assert all(v != "f" * 64 for vs in tpm_policy(merged).values() for v in vs)


def test_sm3_256_is_replayed_with_openssl_sm3_never_dropped() -> None:
    import hashlib

    names = (("sha256", "sha256"), ("sm3_256", "sm3"))
    records = [NewEvent(17, 0x401, {b: hashlib.new(n, d).digest() for b, n in names}, d) for d in (b"sinit", b"kern")]
    log = parse_log(build_crypto_agile(("sha256", "sm3_256"), records))
    value = bytes(32)
    for r in records:
        value = hashlib.new("sm3", value + r.digests["sm3_256"]).digest()
    assert replay(log).values["sm3_256"][17] == value  # TCG's sm3_256 is OpenSSL's sm3
    sm3 = Policy(create(log, None).parts)
    assert tpm_policy(sm3, "sm3_256")["17"] == [value.hex()]


def test_a_bank_this_python_cannot_hash_fails_pcr_banks_naming_it() -> None:
    from sld.verify import _bank_check

    check = _bank_check(("sha256", "sm4"), ("sha256", "sm4"))  # a logged, allocated bank with no hashlib name
    assert check.status == "fail" and check.evidence["unverifiable"] == ["sm4"]
    assert "sm4 cannot be replayed here" in check.detail and "not verified" in check.detail


GOOD_PART = '[[part]]\nname = "mle"\ngroup = "os"\npcr = 17\ntype = "MLE_HASH"\nsha256 = ["' + "00" * 32 + '"]\n'
BAD = {
    "wrong type": ('[[part]]\nname = "mle"\ngroup = "os"\npcr = "17"\ntype = 0x404\nsha1 = ["' + "00" * 20 + '"]\n',
                   "part[0].pcr", "integer"),
    "unknown key": (GOOD_PART + "colour = 1\n", "part[0].colour", "unknown key"),
    "unknown section": ("[launch]\nx = 1\n", "launch", "unknown key"),
    "bad hex": (GOOD_PART.replace("00" * 32, "zz" * 32), "part[0].sha256[0]", "not hex"),
    "digest length": (GOOD_PART.replace("00" * 32, "00" * 20), "part[0].sha256[0]", "32 bytes"),
    "empty digest list": (GOOD_PART.replace('["' + "00" * 32 + '"]', "[]"), "part[0].sha256", "empty list"),
    "no digests": ('[[part]]\nname = "mle"\ngroup = "os"\npcr = 17\ntype = 0x404\n', "part[0]", "no digest"),
    "deep nesting": ("x = " + "[" * 2000 + "]" * 2000 + "\n", "", "nested"),
    "pcrs = 5": ("pcrs = 5\n", "pcrs", "table"),
    "events = [5]": ("events = [5]\n", "events[0]", "table"),
    "bad group": (GOOD_PART.replace('"os"', '"fleet"'), "part[0].group", "platform, os, host"),
    "event type name": (GOOD_PART.replace("MLE_HASH", "NO_SUCH"), "part[0].type", "unknown event type"),
    "twice": (GOOD_PART + GOOD_PART, "part[1].name", "named twice"),
    "old form bank": ('[pcrs.md5]\n17 = "00"\n', "pcrs.md5", "unknown key"),
    "digest not in a list": (GOOD_PART.replace('["' + "00" * 32 + '"]', '"' + "00" * 32 + '"'), "part[0].sha256",
                             "must be an array of hex digests"),
    "after nothing": (GOOD_PART.replace("sha256", 'after = "nonexistent"\nsha256'), "part[0].after",
                      "'mle' is after 'nonexistent', but no part"),
    "after another PCR": (GOOD_PART + GOOD_PART.replace('"mle"', '"initrd"').replace("17", "18").replace(
        "sha256", 'after = "mle"\nsha256'), "part[1].after", "measured in PCR17"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_policy_files_exit_2_naming_file_key_and_reason(tmp_path: Path, case: str) -> None:
    text, key, reason = BAD[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    run = subprocess.run([sys.executable, "-m", "sld.cli", "policy", "show", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and str(path) in run.stderr and reason in run.stderr
    assert f"{path}:{key}:" in run.stderr if key else f"{path}:" in run.stderr


def test_old_form_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text(f'[pcrs.sha256]\n17 = "{"ab" * 32}"\n[[events]]\npcr = 17\ntype = 0x404\nsha1 = "{"cd" * 20}"\n')
    policy = load(str(path))
    assert policy.pcrs == {"sha256": {17: bytes.fromhex("ab" * 32)}} and policy.parts == ()
    assert policy.events[0].type == 0x404 and policy.events[0].digests == {"sha1": bytes.fromhex("cd" * 20)}


def test_dropins_complete_the_main_file(tmp_path: Path, clean: Policy) -> None:
    main = tmp_path / "fleet.toml"
    main.write_text(render(clean, (Group.PLATFORM, Group.OS)))
    (tmp_path / "fleet.toml.d").mkdir()
    (tmp_path / "fleet.toml.d" / "host-a.toml").write_text(render(clean, (Group.HOST,), head=False))
    assert appraise(load(str(main)), log_of("clean")) == ()
    assert {f.text for f in appraise(layers(str(main)).main, log_of("clean"))} == \
        {"Measured Kernel command line", "Measured EFI memory map"}


SCALARS = st.one_of(st.integers(-2, 2**33), st.booleans(), st.text(max_size=70), st.floats(allow_nan=False),
                    st.sampled_from(["00" * 20, "00" * 32, "MLE_HASH", "os", "host", "mle"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["name", "group", "pcr", "type", "text", "after", "sha1", "sha256", "17", "x"]), inner,
    max_size=6), max_leaves=20)
DOCUMENTS = st.dictionaries(st.sampled_from(["policy", "sinit", "part", "pcrs", "events", "extra"]), VALUES,
                            max_size=4)


@settings(max_examples=300, deadline=None)
@given(DOCUMENTS)
def test_any_document_is_a_policy_or_a_config_error(doc: dict) -> None:
    try:
        policy = from_toml(doc, "fuzz.toml")
    except ConfigError as err:
        assert str(err).startswith("fuzz.toml")
    else:
        assert isinstance(policy, Policy)


def test_a_policy_from_a_capped_host_leaves_the_capped_bank_out() -> None:
    log = log_of("capped-bank")
    policy = create(log, None)
    initrd = policy.part("initrd")
    assert initrd is not None and set(initrd.digests) == {"sha1"} and set(policy.part("sinit").digests) == {
        "sha1", "sha256"}
    assert appraise(policy, log) == ()


def test_a_bad_dropin_is_named(tmp_path: Path, clean: Policy) -> None:
    main = tmp_path / "fleet.toml"
    main.write_text(render(clean, (Group.PLATFORM, Group.OS)))
    (tmp_path / "fleet.toml.d").mkdir()
    bad = tmp_path / "fleet.toml.d" / "host-b.toml"
    bad.write_text(GOOD_PART.replace("MLE_HASH", "NO_SUCH"))
    with pytest.raises(ConfigError, match=f"^{bad}:part\\[0\\].type: unknown event type"):
        load(str(main))


def policy_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sld.cli", "policy", *args], capture_output=True, text=True,
                          timeout=60)


def test_policy_files_are_written_by_the_one_safe_writer(tmp_path: Path, clean: Policy) -> None:
    main = tmp_path / "fleet.toml"
    main.write_text(render(clean, (Group.PLATFORM, Group.OS)))
    victim = tmp_path / "victim"
    victim.write_text("keep")
    out = tmp_path / "merged.toml"
    (tmp_path / ".merged.toml.tmp").mkdir()  # a fixed temporary name blocks (or, as a link, redirects) the write
    out.symlink_to(victim)
    run = policy_cli("merge", str(main), str(main), "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert victim.read_text() == "keep" and not out.is_symlink()
    assert load(str(out)).parts == load(str(main)).parts


def test_a_dropin_part_after_an_unknown_part_is_refused_by_load_and_merge(tmp_path: Path, clean: Policy) -> None:
    main = tmp_path / "fleet.toml"
    main.write_text(render(clean, (Group.PLATFORM, Group.OS)))
    (tmp_path / "fleet.toml.d").mkdir()
    host = tmp_path / "fleet.toml.d" / "host.toml"
    host.write_text(render(clean, (Group.HOST,), head=False).replace('after = "boot-params"', 'after = "bootparams"'))
    with pytest.raises(ConfigError, match=f"^{host}:part\\[0\\].after: part 'cmdline' is after 'bootparams'"):
        load(str(main))
    run = policy_cli("merge", str(main), str(main), "-o", str(tmp_path / "out.toml"))
    assert run.returncode == 2 and f"{host}:part[0].after: part 'cmdline'" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "out.toml").exists()


def test_a_bank_the_policy_does_not_list_fails_naming_part_and_bank(clean: Policy) -> None:
    log = log_of("clean-sha384")
    findings = appraise(clean, log)
    assert findings and {f.problem for f in findings} == {Problem.BANK}
    assert {f.part for f in findings} == {p.name for p in clean.parts}  # every part, none passes on sha1/sha256
    first = findings[0]
    assert set(first.found) == {"sha384"} and len(first.found["sha384"]) == 96
    assert f"part {first.part}: bank-not-in-policy" in first.detail
    assert f"sha384 is not in the policy, found {first.found['sha384']}" in first.detail
    assert appraise(create(log, None), log) == ()  # create lists every bank the log records
    assert all(set(p.digests) == set(log.banks) for p in create(log, None).parts)


def test_keylime_export_refuses_a_policy_that_allows_extra_events(tmp_path: Path, clean: Policy) -> None:
    path = tmp_path / "loose.toml"
    path.write_text(render(replace(clean, allow_extra=True)))
    run = policy_cli("export", "--format", "keylime", str(path))
    assert run.returncode == 1 and run.stdout == "", run.stdout
    assert f"refusing to export {path}" in run.stderr and "allow_extra = true" in run.stderr
    path.write_text(render(clean))
    exported = policy_cli("export", "--format", "keylime", str(path))
    assert exported.returncode == 0 and json.loads(exported.stdout) == tpm_policy(clean)


def write_created(policy: Policy, main: Path) -> Path:
    """The two files ``sld policy create`` writes: the main file and its host drop-in."""
    main.write_text(render(policy, (Group.PLATFORM, Group.OS)))
    (main.parent / f"{main.name}.d").mkdir()
    (main.parent / f"{main.name}.d" / "host.toml").write_text(render(policy, (Group.HOST,), head=False))
    return main


def test_merge_keeps_host_parts_in_the_drop_in_as_create_does(tmp_path: Path, clean: Policy) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_created(clean, tmp_path / "a" / "p.toml")
    b = write_created(create(log_of("changed-cmdline"), None), tmp_path / "b" / "p.toml")
    out = tmp_path / "c.toml"
    run = policy_cli("merge", str(a), str(b), "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert {p.group for p in layers(str(out)).main.parts} == {Group.PLATFORM, Group.OS}
    host = load(str(out)).part("cmdline")
    assert host is not None and len(host.digests["sha256"]) == 2
    assert (tmp_path / "c.toml.d" / "host.toml").is_file() and str(tmp_path / "c.toml.d" / "host.toml") in run.stdout
    for scenario in ("clean", "changed-cmdline"):
        assert appraise(load(str(out)), log_of(scenario)) == ()


@pytest.mark.parametrize(("change", "key", "values"), [
    ({"allow_extra": True}, "policy.allow_extra", ("false", "true")),
    ({"sinit": SinitPolicy(True, 3, 1, 0x20240110)}, "sinit.txt_svn", ("5", "3")),
    ({"sinit": SinitPolicy(False)}, "sinit.header", ("true", "false")),
])
def test_merge_refuses_to_loosen_posture_unless_asked(tmp_path: Path, clean: Policy, change: dict, key: str,
                                                     values: tuple[str, str]) -> None:
    a, b, out = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "c.toml"
    strict = replace(clean, sinit=SinitPolicy(True, 5, 1, 0x20250301))
    a.write_text(render(strict))
    b.write_text(render(replace(strict, **change)))
    said = {a: values[0], b: values[1]}
    for first, second in ((a, b), (b, a)):  # whichever side is the looser one
        run = policy_cli("merge", str(first), str(second), "-o", str(out))
        assert run.returncode == 1 and not out.exists(), run.stderr
        assert f"{key} is {said[first]} in {first} and {said[second]} in {second}" in run.stderr
        assert "--loosen" in run.stderr
    run = policy_cli("merge", str(a), str(b), "-o", str(out), "--loosen")
    assert run.returncode == 0 and "posture loosened" in run.stdout, run.stderr
    assert load(str(out)).allow_extra == replace(strict, **change).allow_extra
    assert load(str(out)).sinit == merge(strict, replace(strict, **change)).sinit


def test_a_drop_in_may_not_loosen_the_main_file(tmp_path: Path, clean: Policy) -> None:
    main = write_created(clean, tmp_path / "fleet.toml")
    dropin = tmp_path / "fleet.toml.d" / "host.toml"
    dropin.write_text("[policy]\nallow_extra = true\n" + dropin.read_text())
    with pytest.raises(ConfigError, match=f"^{dropin}:policy.allow_extra: a drop-in may not loosen"):
        load(str(main))
