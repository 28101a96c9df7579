"""Real event logs from ../shared/corpus: every one parses, and replay reproduces published PCRs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sld.formats._util import Region
from sld.formats.eventlog import bank_name, parse_log, stream_log
from sld.formats.tcg import SpecIdEvent, TcgPcrEventHead, parse_log_reference
from sld.replay import digest_mismatches, replay
from sld.vocab import LogFormat

# (file, bank, pcr, published value or "prefix…suffix") from the sub-folders' MANIFEST.md files
PUBLISHED = [
    ("drtm-tests-amd-skinit/eventlog-linux-v0.5.3-rc1.bin", "sha256", 17,
     "67be67686d82da37b760991194fff2cca163a4bad507b37927ae1742545aafe1"),
    ("drtm-tests-amd-skinit/eventlog-linux-v0.5.3-rc1.bin", "sha256", 18,
     "8790e9bccaebfe038e13173cfb2d3b8f41434643669055978ec2e210da724a38"),
    ("drtm-tests-amd-skinit/eventlog-linux-v0.5.3-rc1.bin", "sha1", 17, "a8c09473c7a5f90a84098e779f276333cdbf661a"),
    ("drtm-tests-amd-skinit/eventlog-linux-v0.5.3-rc1.bin", "sha1", 18, "153de987125e37f9cd9e7a61791222f65ee7036b"),
    ("drtm-tests-amd-skinit/eventlog-xen-v0.5.3-rc1.bin", "sha256", 17,
     "e17d42476df9d13cd73119cbd30d14795bdf8304c6a1f85e7c1eca554e07c055"),
    ("drtm-tests-amd-skinit/eventlog-xen-v0.5.3-rc1.bin", "sha256", 18,
     "3e282d7905a8caff55b6537b255e16dc3b3cede1048481ea67d267bea7b3608e"),
    ("drtm-tests-amd-skinit/eventlog-xen-v0.5.3-rc1.bin", "sha1", 17, "0318a2c7cc558c5d9dd6f4d5acf751c2a2dcec01"),
    ("drtm-tests-amd-skinit/eventlog-xen-v0.5.3-rc1.bin", "sha1", 18, "1d770ad1285cb8f85dcb4dd03e4cdfb4c301a30e"),
    *[("go-tpm-tools/gdc-host.bin", "sha256", pcr, v) for pcr, v in {
        0: "dab77c454bd12c27ff6b6ce1f9adca90b7a330c1cef0b5cd01cb89fb3bd0dffa",
        1: "e9c706539943b2d9770715914f9b3946fab0265327bace4c479913acb9014051",
        2: "7fde57284c6a0eabdc9b829db4e2ab0bb565c4189410de2474dd116bc18bafcc",
        3: "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
        4: "ded8b5d91a09c328b9859d8c9db5a346f1065224616b0ba66d6c83dba2b465e8",
        5: "163ee251955b844012f1493aa962b2a18acbec194ea4856cdc45cd54c8540058",
        6: "3d458cfe…7969",
        7: "2c9252609eda09899d96abe16b947d0e736c43271997c1fa5189e9bcd37ba516",
        8: "8edecd4daa5194ea70a2a9f2c71c7c816bd3b1e0a1ca6f4abea7306250191eba",
        9: "731d336f9f3255e80b429de54fb77b2ad5e485829eb386d661c668245f30f44b",
        14: "306f9d8b94f17d93dc6e7cf8f5c79d652eb4c6c4d13de2dddc24af416e13ecaf"}.items()],
    *[("go-tpm-tools/glinux-alex.bin", "sha1", pcr, v) for pcr, v in {
        0: "29d236609a5f9cc6912af44ba5f57b13a17c8a84", 1: "db16852a369b2503d6cc6c0007501c837dbe1170",
        2: "0c8ef58d40b8cd1fe15f6b45fc1b385dd251eec0", 3: "b2a83b0e…7236",
        4: "c56cddf3dcf59a473a239efd17b130391e24b0df", 5: "23606963a2813421f5b6e76e32a337ff8940e413",
        6: "b2a83b0e…7236", 7: "9221b8fc57b60cb7de507dc016f88d4600cde9c5"}.items()],
    *[("go-tpm-tools/glinux-alex.bin", "sha256", pcr, v) for pcr, v in {
        0: "0e5ea849d7647a1ac1becc096fee4df98f00f8015f934afadaab0b8aa20b38a5",
        1: "9750400838980c9419764b9cf19c975c0e159c18ebe21cb897c6e834a8d8d433",
        2: "970096d49105b0404999173e49c3f6b8597b9c4c5ff6a9e364b55ce01037578e", 3: "3d458cfe…7969",
        4: "ddb124ca9013f1e42f98537f7f381e47c5e6caa988cf2b4088f452c5a8dd912d",
        5: "fb58603615cfec59c0428e71913d30d45f38e4280380cc814135a7659c246b13", 6: "3d458cfe…7969",
        7: "9d1be46302bc4f5055c90a0376d9142e397ca8744f387c9824170f1bc855fde5"}.items()],
    *[("go-tpm-tools/arch-linux-workstation.bin", "sha1", pcr, v) for pcr, v in {
        0: "a0487b0d95387d4a30560edf5f041307bf4a1dcc", 1: "56b71c334a5b67d3b7b3343e3241dff5a1ad87bf",
        2: "01098a68e44e4fbd0af3b9a836b1b79e78c4f6f5", 3: "b2a83b0e…7236",
        4: "4c8b6f359b5e5cb9d09e825009a98e1281165b01", 5: "0dfa5ca60508ac5214515b20ed3e66289514fcb6",
        6: "b2a83b0e…7236", 7: "029c700c2fa2bc83cbf3ce4ee501ad4d984ec5ae",
        8: "aa99fc93faa0777f42da6e1ae77a0653b5005619"}.items()],
    *[("go-tpm-tools/arch-linux-workstation.bin", "sha256", pcr, v) for pcr, v in {
        0: "758b773d94feabf52ef5a4c00a7ad2c80d8d6e6d9d58756150be9bc973da9087",
        1: "bfda688a5d320123fddb3fc70b746bc17647e2e7f2f96e130d429542bf4622d5",
        2: "65dee4a48cde677aa89fa83c5c35e883fda658f743853e3ebad504ca6702f7c5", 3: "3d458cfe…7969",
        4: "925d453d3dfef4ac0c72c957402163d45fa95d05e6d53f047263a3a60b598325",
        5: "202522f005ef625588bb7c9e21335ba96a63c5086306138885b3bb2c381730ca", 6: "3d458cfe…7969",
        7: "3b4a4db44b7a872524055364e62e897ae678e0d47ab0809f65c3a4ed77f66ab9",
        8: "47591b43af431963eaeb5238a5c42eda1eb0014c27f7de7ae483066a2d2a2e61"}.items()],
    ("go-attestation/ebs_event_missing_eventlog.bin", "sha1", 5, "e5781a2f…d43c"),
    ("tpm2-tools/event-uefi-sha1-log.bin", "sha1", 0, "3dcaea25dc86554d94b94aa5bc8f735a49212af8"),
]


def _matches(actual: str, published: str) -> bool:
    if "…" in published:
        head, tail = published.split("…")
        return actual.startswith(head) and actual.endswith(tail)
    return actual == published


@pytest.mark.parametrize("name,bank,pcr,value", PUBLISHED, ids=lambda v: str(v).split("/")[-1][:24])
def test_replay_reproduces_published_pcr(corpus: Path, name: str, bank: str, pcr: int, value: str) -> None:
    log = parse_log((corpus / name).read_bytes())
    assert _matches(replay(log).values[bank][pcr].hex(), value)


def test_every_corpus_log_parses_and_agrees_with_the_construct_declarations(corpus: Path) -> None:
    """Every record, its index, offset, digests and data, as the construct declarations read it (no exemption)."""
    files = sorted(corpus.glob("*/*.bin"))
    assert len(files) >= 12
    for path in files:
        data = path.read_bytes()
        log = parse_log(Region(data, 0x7A010000))
        assert log.events, path
        assert list(log.events) == parse_log_reference(Region(data, 0x7A010000)), path


def test_every_corpus_header_agrees_with_the_construct_declarations(corpus: Path) -> None:
    """The Spec ID header's struct reader (which the reference walk shares) against SpecIdEvent, on every
    crypto-agile corpus log: the records are cross-checked above, the header here."""
    agile = 0
    for path in sorted(corpus.glob("*/*.bin")):
        data = path.read_bytes()
        log = parse_log(data)
        if log.format != LogFormat.CRYPTO_AGILE:
            continue
        agile += 1
        spec = SpecIdEvent.parse(data[TcgPcrEventHead.sizeof() :])
        assert log.spec_id == {k: spec[k] for k in log.spec_id}, path
        assert log.algorithms == tuple((bank_name(a.alg_id), a.digest_size) for a in spec.algorithms), path
    assert agile >= 9


def test_every_corpus_log_streams_as_it_parses(corpus: Path) -> None:
    for path in sorted(corpus.glob("*/*.bin")):
        data = path.read_bytes()
        for size in (1, 13, 4096):
            header, events = stream_log((data[i : i + size] for i in range(0, len(data), size)), len(data))
            assert tuple(events) == parse_log(data).events, (path, size)
            assert header.banks == parse_log(data).banks


def test_startup_locality_seeds_pcr0(corpus: Path) -> None:
    """gdc-host's published PCR0 needs locality 3 seeding; from zero it would be bdb29e0b…afbe."""
    log = parse_log((corpus / "go-tpm-tools/gdc-host.bin").read_bytes())
    assert not replay(log).values["sha256"][0].hex().startswith("bdb29e0b")


def test_linux_drtm_markers_are_not_extended(corpus: Path) -> None:
    log = parse_log((corpus / "drtm-tests-amd-skinit/eventlog-linux-v0.5.3-rc1.bin").read_bytes())
    markers = [e for e in log.events if e.pcr == 17 and e.type == 3]
    assert len(markers) == 2
    assert not set(replay(log).events_by_pcr[17]) & {e.index for e in markers}


def test_tampered_fixture_disagrees_with_the_tpm_read_value(corpus: Path) -> None:
    """event-arch-linux.bin is arch-linux-workstation.bin with PCR4 events altered."""
    tampered = replay(parse_log((corpus / "tpm2-tools/event-arch-linux.bin").read_bytes()))
    assert tampered.values["sha1"][4].hex().startswith("2845117447a5")
    assert tampered.values["sha1"][4].hex() != "4c8b6f359b5e5cb9d09e825009a98e1281165b01"


@pytest.mark.referee
@pytest.mark.skipif(shutil.which("tpm2_eventlog") is None, reason="tpm2_eventlog (Debian tpm2-tools) is absent")
def test_payload_digest_warnings_match_tpm2_eventlog_on_types_both_check(corpus: Path) -> None:
    """Where sld checks digest == H(data), it warns on exactly the events tpm2_eventlog warns on."""
    checked = 0
    for path in sorted(corpus.glob("*/*.bin")):
        run = subprocess.run(["tpm2_eventlog", str(path)], capture_output=True, text=True)
        theirs = {int(w.split()[2].rstrip("'s")) for w in run.stderr.splitlines() if w.startswith("WARN: Event")}
        log = parse_log(path.read_bytes())
        ours = {e.index for e, _ in digest_mismatches(log)}
        by_index = {e.index: e for e in log.events}
        assert ours <= theirs, path
        assert ours == {i for i in theirs if by_index[i].type in (0x4, 0x5, 0x8, 0x80000007)}, path
        checked += len(theirs)
    assert checked >= 2
