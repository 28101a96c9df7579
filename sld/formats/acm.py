"""The Authenticated Code Module header: what SINIT.BASE holds when the loader copied a SINIT there.

One declaration of the fixed part of the header (SDG A.1 "Authenticated Code Module Format", Table
A-1; the same layout as tboot ``acm_hdr_t`` and edk2 ``ACM_HEADER``), used to parse what a platform
shows and to build what the simulator writes. sld reads only the identity and version fields an
appraisal needs (TxtSvn, SeSvn, Date); the key, signature and scratch areas that follow are the
processor's business (it authenticates the module before GETSEC[SENTER] runs it).
"""

from __future__ import annotations

import construct as cs

from sld.formats._util import Region, build
from sld.records import Record

MODULE_TYPE_CHIPSET = 2  # SDG A.1: ModuleType 2 = chipset ACM (BIOS ACM and SINIT alike)
MODULE_SUBTYPE_SINIT = 0  # 0: SINIT (run by SENTER); 1: BIOS ACM capable of running at reset
VENDOR_INTEL = 0x8086

AcmHeader = cs.Struct(
    "ModuleType" / cs.Int16ul,
    "ModuleSubType" / cs.Int16ul,
    "HeaderLen" / cs.Int32ul,  # in dwords (161 for header version 0.0)
    "HeaderVersion" / cs.Int32ul,
    "ChipsetID" / cs.Int16ul,
    "Flags" / cs.Int16ul,
    "ModuleVendor" / cs.Int32ul,
    "Date" / cs.Int32ul,  # BCD yyyymmdd
    "Size" / cs.Int32ul,  # in dwords, the whole module
    "TxtSvn" / cs.Int16ul,
    "SeSvn" / cs.Int16ul,
    "CodeControl" / cs.Int32ul,
    "ErrorEntryPoint" / cs.Int32ul,
    "GDTLimit" / cs.Int32ul,
    "GDTBasePtr" / cs.Int32ul,
    "SegSel" / cs.Int32ul,
    "EntryPoint" / cs.Int32ul,
    "Reserved2" / cs.Bytes(64),
    "KeySize" / cs.Int32ul,  # in dwords
    "ScratchSize" / cs.Int32ul,  # in dwords
)
HEADER_SIZE = AcmHeader.sizeof()


class Acm(Record):
    """The identity an appraisal remembers: security version numbers and the build date."""

    address: int
    txt_svn: int
    se_svn: int
    date: int
    chipset_id: int
    flags: int

    @property
    def date_text(self) -> str:
        """The BCD date as ``YYYY-MM-DD`` (SDG A.1 stores it as 0xYYYYMMDD)."""
        d = f"{self.date:08x}"
        return f"{d[:4]}-{d[4:6]}-{d[6:]}"


def looks_like_acm(data: bytes) -> bool:
    """Whether ``data`` starts with a chipset-ACM header from Intel (zeros or a kernel image do not)."""
    if len(data) < HEADER_SIZE:
        return False
    head = AcmHeader.parse(data[:HEADER_SIZE])
    return bool(head.ModuleType == MODULE_TYPE_CHIPSET and head.ModuleVendor == VENDOR_INTEL and
                head.HeaderLen * 4 >= HEADER_SIZE)


def parse_acm(region: Region) -> Acm:
    """The header at the region's address (SINIT.BASE); FormatError names the field and address."""
    head = region.parse(AcmHeader, "ACM header")
    return Acm(region.base, head.TxtSvn, head.SeSvn, head.Date, head.ChipsetID, head.Flags)


def build_acm(*, txt_svn: int, se_svn: int, date: int, size: int, chipset_id: int = 0xB00C) -> bytes:
    """A SINIT header as the simulator places it at SINIT.BASE (production-signed, header version 0.0)."""
    return build(AcmHeader, {
        "ModuleType": MODULE_TYPE_CHIPSET, "ModuleSubType": MODULE_SUBTYPE_SINIT, "HeaderLen": 161,
        "HeaderVersion": 0, "ChipsetID": chipset_id, "Flags": 0, "ModuleVendor": VENDOR_INTEL, "Date": date,
        "Size": size // 4, "TxtSvn": txt_svn, "SeSvn": se_svn, "CodeControl": 0, "ErrorEntryPoint": 0,
        "GDTLimit": 0x28, "GDTBasePtr": 0x400, "SegSel": 0x8, "EntryPoint": 0x1000, "Reserved2": bytes(64),
        "KeySize": 64, "ScratchSize": 143}, "ACM header")
