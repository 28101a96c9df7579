"""TXT configuration registers: the public/private space map, status bits and ERRORCODE decoding.

One construct declaration of the config page (SDG App. B) parses what /dev/mem shows and builds what
the simulator writes. ERRORCODE decodes both by SDG field and into the same words tboot's
``txt-parse_err`` prints (spec §1.4), plus the Secure Launch 0xC00080xx names (spec §5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import construct as cs

from sld.errors import FormatError
from sld.formats._util import Region, build
from sld.records import Record

TXT_PRIV_BASE = 0xFED20000
TXT_PUB_BASE = 0xFED30000
TXT_SPACE_SIZE = 0x10000

# name -> (offset, width in bytes) of every readable register [SDG B.1; spec §1.2]
REGISTERS: dict[str, tuple[int, int]] = {
    "STS": (0x000, 8), "ESTS": (0x008, 8), "ERRORCODE": (0x030, 8), "VER.FSBIF": (0x100, 8),
    "DIDVID": (0x110, 8), "VER.EMIF": (0x200, 8), "SINIT.BASE": (0x270, 8), "SINIT.SIZE": (0x278, 8),
    "MLE.JOIN": (0x290, 8), "HEAP.BASE": (0x300, 8), "HEAP.SIZE": (0x308, 8), "MSEG.BASE": (0x310, 8),
    "MSEG.SIZE": (0x318, 8), "DPR": (0x330, 8), "SCRATCHPAD": (0x378, 8), "PUBLIC.KEY": (0x400, 32),
    "E2STS": (0x8F0, 8),
}

STS_BITS = {"senter_done": 0, "sexit_done": 1, "mem_config_lock": 6, "private_open": 7,
            "locality1_open": 15, "locality2_open": 16}
ESTS_BITS = {"txt_reset": 0}
E2STS_BITS = {"secrets": 1}


def _page() -> cs.Struct:
    """The config page as one Struct, each register at its SDG offset (gaps are padding)."""
    fields: list[Any] = []
    pos = 0
    for name, (off, width) in sorted(REGISTERS.items(), key=lambda kv: kv[1][0]):
        if off > pos:
            fields.append(cs.Padding(off - pos))
        fields.append(name / (cs.Bytes(width) if width == 32 else cs.Int64ul))
        pos = off + width
    fields.append(cs.Padding(TXT_SPACE_SIZE - pos))
    return cs.Struct(*fields)


ConfigPage = _page()


class TxtRegisters(Record):
    """Raw register values; decoded views are properties so JSON and tables agree."""

    values: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def heap_base(self) -> int:
        """HEAP.BASE (SDG B.1.13); 0 when absent, as securityfs does not export it."""
        return int(self.values.get("HEAP.BASE", 0))

    @property
    def heap_size(self) -> int:
        """HEAP.SIZE (SDG B.1.14); 0 when absent."""
        return int(self.values.get("HEAP.SIZE", 0))

    @property
    def sts(self) -> dict[str, bool]:
        """STS bits by name (SDG B.1.1; spec §1.3)."""
        return _bits(self.values["STS"], STS_BITS)

    @property
    def ests(self) -> dict[str, bool]:
        """ESTS bits by name (SDG B.1.2)."""
        return _bits(self.values["ESTS"], ESTS_BITS)

    @property
    def e2sts(self) -> dict[str, bool]:
        """E2STS bits by name (SDG B.1.23)."""
        return _bits(self.values["E2STS"], E2STS_BITS)

    @property
    def errorcode(self) -> ErrorCode:
        """ERRORCODE decoded (SDG App. I; spec §1.4)."""
        return decode_errorcode(self.values["ERRORCODE"])

    @property
    def didvid(self) -> dict[str, int]:
        """DIDVID's vendor, device, revision and extended ids (SDG B.1.7)."""
        v = self.values["DIDVID"]
        return {"vendor_id": v & 0xFFFF, "device_id": (v >> 16) & 0xFFFF, "revision_id": (v >> 32) & 0xFFFF,
                "extended_id": (v >> 48) & 0xFFFF}

    @property
    def dpr(self) -> dict[str, int | bool] | None:
        """DPR's lock, size and top (SDG B.1.15), or None when it was not read."""
        if "DPR" not in self.values:
            return None
        v = self.values["DPR"]
        return {"lock": bool(v & 1), "size_mib": (v >> 4) & 0xFF, "top": ((v >> 20) & 0xFFF) << 20}


def _bits(value: int, table: dict[str, int]) -> dict[str, bool]:
    return {name: bool(value >> bit & 1) for name, bit in table.items()}


def parse_registers(page: Region) -> TxtRegisters:
    """The config page as mapped at ``page.base`` (TXT_PUB_BASE on a real platform; SDG B.1)."""
    parsed = page.parse(ConfigPage, "TXT config space")
    return TxtRegisters({k: v for k, v in parsed.items() if k in REGISTERS})


def build_registers(values: dict[str, Any]) -> bytes:
    """The 64 KiB page with ``values`` set (every other register reads 0, as unimplemented bits do)."""
    full = {name: (bytes(32) if width == 32 else 0) for name, (_, width) in REGISTERS.items()}
    unknown = set(values) - set(full)
    if unknown:
        raise FormatError("TXT config space", f"no such register(s): {', '.join(sorted(unknown))}")
    full.update(values)
    return build(ConfigPage, full, "TXT config space")


# ---- ERRORCODE ---------------------------------------------------------------------------------

SL_ERRORS = (  # index = code & 0x7fff [SL v7-05, v16-19 slaunch.h; spec §5]
    None, "GENERIC", "TPM_INIT", "TPM_INVALID_LOG20", "TPM_LOGGING_FAILED", "REGION_STRADDLE_4GB",
    "TPM_EXTEND", "MTRR_INV_VCNT", "MTRR_INV_DEF_TYPE", "MTRR_INV_BASE", "MTRR_INV_MASK", "MSR_INV_MISC_EN",
    "INV_AP_INTERRUPT", "INTEGER_OVERFLOW", "HEAP_WALK", "HEAP_MAP", "REGION_ABOVE_4GB", "HEAP_INVALID_DMAR",
    "HEAP_DMAR_SIZE", "HEAP_DMAR_MAP", "HI_PMR_BASE", "HI_PMR_SIZE", "LO_PMR_BASE", "LO_PMR_MLE",
    "INITRD_TOO_BIG", "HEAP_ZERO_OFFSET", "WAKE_BLOCK_TOO_SMALL", "MLE_BUFFER_OVERLAP", "BUFFER_BEYOND_PMR",
    "OS_SINIT_BAD_VERSION", "EVENTLOG_MAP", "TPM_INVALID_ALGS (TPM_NUMBER_ALGS before v12)",
    "TPM_EVENT_COUNT (TPM_UNKNOWN_DIGEST before v12)", "TPM_INVALID_EVENT", "INVALID_SLRT",
    "SLRT_MISSING_ENTRY", "SLRT_MAP",
)

PROCESSOR_ERRORS = {  # bits 14:0 when bit 30 is 0 [SDG Table I-2]
    0x0: "legacy shutdown", 0x5: "bad ACM memory type", 0x6: "unsupported ACM", 0x7: "ACM authentication failure",
    0x8: "bad ACM format", 0x9: "unexpected HITM", 0xA: "invalid event", 0xB: "bad JOIN format",
    0xC: "unrecoverable machine check", 0xD: "VMX abort", 0xE: "ACM corrupt", 0xF: "bad VID/bus ratio",
    0x10: "low SGX security level",
}

SINIT_SUCCESS = 0xC0000001


class ErrorCode(Record):
    """ERRORCODE by SDG field, with ``kind`` the verdict reads and ``text`` as txt-parse_err words it."""

    value: int
    valid: bool
    external: bool
    type1: int
    software_source: bool
    type2: int
    kind: str  # none | success | processor | acm | secure-launch | software
    name: str
    text: str


def decode_errorcode(value: int) -> ErrorCode:
    """ERRORCODE by SDG Table I-1 field, named as txt-parse_err and Secure Launch's slaunch.h name it."""
    value &= 0xFFFFFFFF
    valid, external = bool(value >> 31 & 1), bool(value >> 30 & 1)
    type1, sw, type2 = (value >> 16) & 0x3FFF, bool(value >> 15 & 1), value & 0x7FFF
    fields: dict[str, Any] = {"value": value, "valid": valid, "external": external, "type1": type1,
                              "software_source": sw, "type2": type2}
    if not valid:
        return ErrorCode(**fields, kind="none", name="none", text="no error")
    if not external:
        name = PROCESSOR_ERRORS.get(type2, "unknown processor error")
        return ErrorCode(**fields, kind="processor", name=name, text=f"processor error 0x{value & 0x3FFFFFFF:x}")
    if sw:
        text = f"unknown SW error 0x{type2:x}:0x{type1:x}"
        if value & 0xFFFF8000 == 0xC0008000 and 0 < type2 < len(SL_ERRORS):
            return ErrorCode(**fields, kind="secure-launch", name=f"SL_ERROR_{SL_ERRORS[type2]}", text=text)
        return ErrorCode(**fields, kind="software", name="software error", text=text)
    acm_type, progress, error = value & 0xF, (value >> 4) & 0x3F, (value >> 10) & 0x1F
    text = f"AC module error : acm_type=0x{acm_type:x}, progress=0x{progress:02x}, error=0x{error:x}"
    if progress == 0x0D and error == 0x0A:
        text += f"\nTPM error code = 0x{(value >> 16) & 0x1FF:x}"
    elif progress == 0x10 and (value >> 16) & 0x3F:
        text += f"\nLCP2 error: minor = 0x{(value >> 16) & 0x3F:x}, index = {(value >> 22) & 0x7}"
    if value == SINIT_SUCCESS:
        return ErrorCode(**fields, kind="success", name="SINIT success", text=text)
    return ErrorCode(**fields, kind="acm", name=f"ACM error class 0x{progress:x} major 0x{error:x}", text=text)


# ---- securityfs text values (spec §1.5) -------------------------------------------------------

SECURITYFS_WIDTH = {"sts": 16, "didvid": 16, "e2sts": 16, "scratchpad": 16, "errorcode": 8, "ver_emif": 8, "ests": 2}
SECURITYFS_REGISTER = {"sts": "STS", "ests": "ESTS", "errorcode": "ERRORCODE", "didvid": "DIDVID",
                       "ver_emif": "VER.EMIF", "scratchpad": "SCRATCHPAD", "e2sts": "E2STS"}


def format_securityfs_value(name: str, value: int) -> bytes:
    """The kernel's ``%#0Nx\\n`` plus the NUL it also returns; ``0x`` even for zero."""
    return b"0x%0*x\n\x00" % (SECURITYFS_WIDTH[name], value)


_SECURITYFS_TEXT = {name: re.compile(rb"0x[0-9a-f]{%d}\n\x00" % width) for name, width in SECURITYFS_WIDTH.items()}
"""Exactly what the kernel's ``%#0Nx\\n`` writes, NUL included: lowercase digits, no sign, no ``_``."""


def parse_securityfs_value(name: str, raw: bytes) -> int:
    """One ``slaunch/txt/NAME`` file's bytes as the register value, in the kernel's exact grammar (spec §1.5)."""
    width = SECURITYFS_WIDTH[name]
    if not _SECURITYFS_TEXT[name].fullmatch(raw):
        raise FormatError(f"securityfs slaunch/txt/{name}", f"expected '0x' + {width} lowercase hex digits + "
                          f"newline + NUL, got {raw[:40]!r}")
    return int(raw[2:-2], 16)


def from_securityfs(files: Mapping[str, bytes]) -> TxtRegisters:
    """Registers from the bytes of securityfs's ``slaunch/txt/*`` files (a subset of the page; no heap pointers)."""
    return TxtRegisters({SECURITYFS_REGISTER[k]: parse_securityfs_value(k, raw) for k, raw in files.items()})
