"""TXT registers: round trip, real captures decoded as txt-stat decoded them, ERRORCODE as txt-parse_err."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sld.errors import FormatError
from sld.formats._util import Region
from sld.formats.registers import (
    TXT_PUB_BASE,
    ConfigPage,
    build_registers,
    decode_errorcode,
    format_securityfs_value,
    parse_registers,
    parse_securityfs_value,
)
from tests.roundtrip import assert_round_trip
from tests.txtstat import STS_NAMES, parse_txt_stat


def test_round_trip_of_every_register() -> None:
    values = {"STS": 0x18041, "ESTS": 1, "ERRORCODE": 0xC0000001, "DIDVID": 0x1B00C8086, "HEAP.BASE": 0x7B000000,
              "HEAP.SIZE": 0xE0000, "DPR": 0x7C000031, "E2STS": 2, "PUBLIC.KEY": bytes(range(32))}
    page = build_registers(values)
    assert len(page) == 0x10000 == ConfigPage.sizeof()
    regs = assert_round_trip(parse_registers, lambda r: build_registers(r.values), page, TXT_PUB_BASE)
    assert {k: regs[k] for k in values} == values
    assert regs.sts["senter_done"] and regs.sts["locality2_open"] and not regs.sts["sexit_done"]
    assert regs.e2sts["secrets"] and regs.ests["txt_reset"]
    assert regs.dpr == {"lock": True, "size_mib": 3, "top": 0x7C000000}


def test_short_page_is_a_format_error_with_address() -> None:
    with pytest.raises(FormatError, match=f"0x{TXT_PUB_BASE:x}"):
        parse_registers(Region(b"\0" * 0x100, TXT_PUB_BASE))


@pytest.mark.parametrize("name", ["icelake-495pch-txt-disabled-2020.txt", "nuc8i7hvk-no-smx-2021.txt",
                                  "protectli-vp6670-adl-not-launched-2025.txt"])
def test_real_txt_stat_captures_decode_the_same(corpus: Path, name: str) -> None:
    regs, fields = parse_txt_stat((corpus / "tboot-devel-txt-stat" / name).read_text())
    page = build_registers({k: v for k, v in regs.items() if k in ("STS", "ESTS", "E2STS", "ERRORCODE", "DIDVID",
                                                                   "HEAP.BASE", "SINIT.BASE")})
    ours = parse_registers(Region(page, TXT_PUB_BASE))
    for flag, value in fields["STS"].items():
        assert ours.sts[STS_NAMES[flag]] is value, flag
    assert ours.e2sts["secrets"] is fields["E2STS"]["secrets"]
    assert ours.ests["txt_reset"] is fields["ESTS"]["txt_reset"]
    assert ours.didvid["vendor_id"] == fields["DIDVID"]["vendor_id"] == 0x8086
    assert ours.didvid["device_id"] == fields["DIDVID"]["device_id"]


def test_chipsec_recording_decodes(corpus: Path) -> None:
    rec = json.loads((corpus / "chipsec/txt_cmd_state_1.json").read_text())
    text = json.dumps(rec)
    assert "4275240960" in text  # 0xFED30000: the recording holds public-space reads
    regs = parse_registers(Region(build_registers({"STS": 0x2, "E2STS": 0x4, "DIDVID": 0x1B00C8086}), TXT_PUB_BASE))
    assert regs.sts["sexit_done"] and not regs.sts["senter_done"] and not regs.e2sts["secrets"]
    assert regs.didvid["device_id"] == 0xB00C


CODES = [0, 0xC0000001, 0xC00022D1, 0xC0008006, 0xC0008023, 0x8000000A, 0xC0003401, 0xC0210201, 0xC0008FFF]


@pytest.mark.referee
@pytest.mark.skipif(shutil.which("txt-parse_err") is None, reason="txt-parse_err (Debian tboot) is absent")
@pytest.mark.parametrize("code", CODES)
def test_errorcode_text_matches_txt_parse_err(code: int) -> None:
    out = subprocess.run(["txt-parse_err", hex(code)], capture_output=True, text=True, check=True).stdout
    theirs = [line.strip() for line in out.splitlines()[1:] if line.strip()]
    assert decode_errorcode(code).text.splitlines() == theirs


def test_secure_launch_codes_by_name() -> None:
    assert decode_errorcode(0xC0008006).name == "SL_ERROR_TPM_EXTEND"
    assert decode_errorcode(0xC0008023).name == "SL_ERROR_SLRT_MISSING_ENTRY"
    assert decode_errorcode(0xC0000001).kind == "success"
    assert decode_errorcode(0).kind == "none"


@pytest.mark.parametrize("name,value", [("sts", 0x18041), ("ests", 0), ("errorcode", 0xC0000001), ("didvid", 1)])
def test_securityfs_text_round_trip(name: str, value: int) -> None:
    raw = format_securityfs_value(name, value)
    assert raw.startswith(b"0x") and raw.endswith(b"\n\x00")
    assert parse_securityfs_value(name, raw) == value


def test_securityfs_text_widths_match_the_kernel() -> None:
    assert len(format_securityfs_value("sts", 0)) == 20
    assert len(format_securityfs_value("errorcode", 0)) == 12
    assert len(format_securityfs_value("ests", 0)) == 6
    with pytest.raises(FormatError, match="slaunch/txt/sts"):
        parse_securityfs_value("sts", b"0x1\n")


KERNEL_STS = b"0x0000000000018041\n\x00"


@pytest.mark.parametrize("raw", [KERNEL_STS[:2] + c + KERNEL_STS[3:] for c in (b"_", b"+", b"-", b" ")]
                         + [KERNEL_STS.replace(b"41", b"4A"), KERNEL_STS.replace(b"0x", b"0X"),
                            KERNEL_STS[:-1] + b"\n", b" " + KERNEL_STS[:-1]])
def test_securityfs_text_outside_the_kernel_grammar_is_refused(raw: bytes) -> None:
    assert len(raw) == len(KERNEL_STS) and parse_securityfs_value("sts", KERNEL_STS) == 0x18041
    with pytest.raises(FormatError, match="slaunch/txt/sts"):
        parse_securityfs_value("sts", raw)
