"""Posture facts (sld.posture), the ACM header declaration and the state directory, on simulator data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sld import posture
from sld.appraisal.create import create
from sld.appraisal.files import load
from sld.discover import discover
from sld.errors import ConfigError, FormatError
from sld.formats._util import Region
from sld.formats.acm import HEADER_SIZE, AcmHeader, looks_like_acm, parse_acm
from sld.formats.eventlog import parse_log
from sld.formats.names import EVTYPE_CAP_VALUE
from sld.formats.registers import TXT_PUB_BASE, parse_registers
from sld.formats.tcg import NewEvent, build_crypto_agile
from sld.platform.source import open_source
from sld.replay import unmeasured
from sld.sim.builder import SINIT_BASE, build_platform
from sld.sim.scenarios import SimEvent, events_for, measure, scenario, sinit_image
from sld.statedir import read_record, write_record
from sld.verify import PcrState, _pcr_check
from sld.vocab import CheckId, CheckStatus, Mode, PcrStatus
from tests.roundtrip import assert_declaration_round_trip


def test_acm_header_round_trips_and_reads_its_versions() -> None:
    image = sinit_image(scenario("clean").spec)
    head = image[:HEADER_SIZE]
    obj = dict(AcmHeader.parse(head))
    obj.pop("_io", None)
    assert_declaration_round_trip(AcmHeader, head, obj)
    acm = parse_acm(Region(image, SINIT_BASE))
    assert (acm.address, acm.txt_svn, acm.se_svn, acm.date_text) == (SINIT_BASE, 5, 1, "2026-03-15")
    assert not looks_like_acm(bytes(HEADER_SIZE)) and not looks_like_acm(image[:64])
    with pytest.raises(FormatError, match=f"ACM header.GDTLimit at 0x{SINIT_BASE:x}: truncated"):
        parse_acm(Region(image[:40], SINIT_BASE))


def test_discover_reads_the_acm_header_at_sinit_base(tmp_path: Path) -> None:
    for name, svn in (("clean", 5), ("downgraded-sinit", 3)):
        build_platform(name).write_image(tmp_path / f"{name}.img")
        with open_source(f"image:{tmp_path / name}.img") as source:
            snap = discover(source)
        assert snap.acm is not None and snap.acm.txt_svn == svn
    build_platform("clean").write_securityfs(tmp_path / "sfs")
    with open_source(f"securityfs:{tmp_path / 'sfs'}") as source:
        assert discover(source).acm is None  # securityfs exports no ACM


def checks_for(name: str) -> dict[CheckId, CheckStatus]:
    log = parse_log(build_platform(name).log)
    banks = log.banks
    return {c.id: c.status for c in (posture.lcp(log), posture.stm(log),
                                     posture.capped_check(unmeasured(log, banks)))}


@pytest.mark.parametrize(("name", "warned"), [("clean", set()), ("no-lcp", {CheckId.POSTURE_LCP}),
                                              ("no-stm", {CheckId.POSTURE_STM}), ("capped-bank", {CheckId.PCR_CAPPED})])
def test_posture_warnings(name: str, warned: set[CheckId]) -> None:
    statuses = checks_for(name)
    assert {k for k, v in statuses.items() if v == CheckStatus.WARN} == warned
    assert all(v == CheckStatus.PASS for k, v in statuses.items() if k not in warned)


def test_cap_value_events_and_capped_digests_make_a_bank_not_measured() -> None:
    log = parse_log(build_platform("capped-bank").log)
    assert unmeasured(log, log.banks) == {17: ("sha256",), 18: ("sha256",)}
    assert unmeasured(parse_log(build_platform("clean").log), ("sha1", "sha256")) == {}


def registers_of(name: str):
    page = build_platform(name).regions()[TXT_PUB_BASE]
    return parse_registers(Region(page, TXT_PUB_BASE))


def test_previous_boot_error_is_its_own_fact() -> None:
    now, before = posture.errorcode(registers_of("previous-boot-error"))
    assert (now.id, now.status) == (CheckId.TXT_ERRORCODE, CheckStatus.PASS) and "earlier boot" in now.detail
    assert (before.id, before.status) == (CheckId.TXT_PREVIOUS_ERROR, CheckStatus.WARN)
    assert "0xc0008006" in before.detail
    failed, own = posture.errorcode(registers_of("txt-error"))  # this boot did not launch: its own error
    assert failed.status == CheckStatus.FAIL and own.status == CheckStatus.SKIP
    clean = posture.errorcode(registers_of("clean"))
    assert [c.status for c in clean] == [CheckStatus.PASS, CheckStatus.PASS]


def test_sinit_policy_and_downgrade() -> None:
    clean_log, old_log = (parse_log(build_platform(n).log) for n in ("clean", "downgraded-sinit"))
    clean_acm, old_acm = (parse_acm(Region(sinit_image(scenario(n).spec), SINIT_BASE))
                          for n in ("clean", "downgraded-sinit"))
    policy = create(clean_log, clean_acm)
    assert posture.sinit_policy(policy, clean_log, clean_acm).status == CheckStatus.PASS
    bad = posture.sinit_policy(policy, old_log, old_acm)
    assert bad.status == CheckStatus.FAIL and "HASH_START" in bad.detail and "TxtSvn 3" in bad.detail
    new, old = posture.sinit_identity(clean_log, clean_acm), posture.sinit_identity(old_log, old_acm)
    assert posture.downgrade(old, new).status == CheckStatus.FAIL
    assert posture.downgrade(new, old).status == CheckStatus.PASS
    assert posture.downgrade(new, None).status == CheckStatus.PASS
    no_header = posture.sinit_identity(old_log, None)
    assert posture.downgrade(no_header, new).status == CheckStatus.SKIP  # age unknown without a header
    assert posture.downgrade(no_header, no_header).status == CheckStatus.PASS


def test_state_records_are_atomic_and_refuse_links(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert read_record(str(state), "sinit") is None and not state.exists()
    write_record(str(state), "sinit", {"txt_svn": 5})
    assert json.loads((state / "sinit.json").read_text()) == {"txt_svn": 5}
    assert oct(os.stat(state / "sinit.json").st_mode & 0o777) == "0o600"
    write_record(str(state), "sinit", {"txt_svn": 6})
    assert read_record(str(state), "sinit") == {"txt_svn": 6} and sorted(os.listdir(state)) == ["sinit.json"]
    (state / "sinit.json").unlink()
    victim = tmp_path / "victim"
    (state / "sinit.json").symlink_to(victim)
    with pytest.raises(ConfigError):
        read_record(str(state), "sinit")
    write_record(str(state), "sinit", {"txt_svn": 7})  # replaces the link itself
    assert not victim.exists() and not (state / "sinit.json").is_symlink()
    link = tmp_path / "link"
    link.symlink_to(state)
    for call in (lambda: read_record(str(link), "sinit"), lambda: write_record(str(link), "sinit", {})):
        with pytest.raises(ConfigError, match="symlink"):
            call()
    (state / "bad.json").write_text("[1]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        read_record(str(state), "bad")


def test_an_older_form_policy_says_nothing_about_the_sinit(tmp_path: Path) -> None:
    log = parse_log(build_platform("clean").log)
    path = tmp_path / "old.toml"
    path.write_text(f'[pcrs.sha256]\n17 = "{"ab" * 32}"\n')
    assert posture.sinit_policy(load(str(path)), log, None).status == CheckStatus.SKIP


def test_a_cap_value_event_leaves_its_pcr_not_measured_in_every_bank() -> None:
    spec = scenario("clean").spec
    events = [*events_for(spec, "v16"), SimEvent(18, EVTYPE_CAP_VALUE, b"\x01", measure(b"\x01", spec.banks))]
    log = parse_log(build_crypto_agile(spec.banks, [NewEvent(e.pcr, e.type, e.digests, e.data) for e in events]))
    assert unmeasured(log, spec.banks) == {18: ("sha1", "sha256")}
    state = PcrState(18, PcrStatus.MATCH, (), 0, {}, {"sha1": b"", "sha256": b""}, ("sha1", "sha256"))
    assert state.bank_status("sha1") == PcrStatus.NOT_MEASURED
    check = _pcr_check((state,), Mode.AUTO)
    assert check.status == CheckStatus.FAIL and "PCR18 not measured in any bank" in check.detail
