"""The Secure Launch Resource Table (SLRT) in every generation of the patch series (spec §3, §7).

The header is the same everywhere; entry headers are u16 tag/size in v7-v9 and u32/u32 from v10,
and most entries were rearranged at v9, v10, v12 and v16 while the table revision stayed 1. Each
generation is one set of declarations made by :func:`entry_struct`; the parser tells generations
apart by structure (entry-header shape, then the sizes of the fixed-size entries) and walks with
bounds: an entry whose size is below its header or runs past ``size`` is a FormatError, never a loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import construct as cs
from construct import this

from sld.errors import FormatError
from sld.formats._util import Region, build
from sld.formats.heap import plain
from sld.records import Record

MAGIC = 0x4452544D  # "MTRD" in memory
HEADER_SIZE = 16
LAYOUTS = ("v7", "v9", "v10", "v12", "v16")

TAGS = {0: "INVALID", 1: "DL_INFO", 2: "LOG_INFO", 3: "ENTRY_POLICY", 4: "INTEL_INFO", 5: "AMD_INFO",
        6: "ARM_INFO", 7: "UEFI_INFO", 8: "UEFI_CONFIG", 0xFFFF: "END"}
TAG = {name: tag for tag, name in TAGS.items()}
LOG_FORMATS = {1: "tpm12", 2: "tpm20"}
ENTITY_TYPES = {0: "UNSPECIFIED", 1: "SLRT", 2: "BOOT_PARAMS", 3: "SETUP_DATA", 4: "CMDLINE", 5: "UEFI_MEMMAP",
                6: "RAMDISK", 7: "MULTIBOOT2_INFO", 8: "MULTIBOOT2_MODULE", 0x10: "TXT_OS2MLE", 0xFFFF: "UNUSED"}

Header = cs.Struct(
    "magic" / cs.Int32ul,
    "revision" / cs.Int16ul,
    "architecture" / cs.Int16ul,
    "size" / cs.Int32ul,
    "max_size" / cs.Int32ul,
)

EvtInfo = cs.Bytes(32)  # NUL padded, may fill all 32 bytes (spec §3)
MtrrState = cs.Struct(
    "default_mem_type" / cs.Int64ul,
    "mtrr_vcnt" / cs.Int64ul,
    "mtrr_pair" / cs.Array(32, cs.Struct("physbase" / cs.Int64ul, "physmask" / cs.Int64ul)),
)
BlContext = cs.Struct("bootloader" / cs.Int16ul, "reserved" / cs.Int16ul, "context" / cs.Int64ul)
BlContextWide = cs.Struct("bootloader" / cs.Int16ul, "reserved" / cs.Array(3, cs.Int16ul), "context" / cs.Int64ul)


def _wide(layout: str) -> bool:
    """v10 onwards: u32 tag, u32 size entry headers and an 8-byte END."""
    return layout not in ("v7", "v9")


def _entry_header(layout: str, tag: int) -> list[Any]:
    if _wide(layout):
        return ["tag" / cs.Const(tag, cs.Int32ul), "size" / cs.Int32ul]
    return ["tag" / cs.Const(tag, cs.Int16ul), "size" / cs.Int16ul]


def _body(layout: str, tag: int) -> list[Any]:
    """Fields after the entry header, per generation (spec §3 table)."""
    v7, v9 = layout == "v7", layout == "v9"
    if tag == TAG["DL_INFO"]:
        if v7:
            return ["bl_context" / BlContext, "dl_handler" / cs.Int64ul, "dce_base" / cs.Int64ul,
                    "dce_size" / cs.Int32ul, "dlme_entry" / cs.Int64ul]
        if v9:
            return ["dce_size" / cs.Int32ul, "dce_base" / cs.Int64ul, "dlme_size" / cs.Int64ul,
                    "dlme_base" / cs.Int64ul, "dlme_entry" / cs.Int64ul, "bl_context" / BlContextWide,
                    "dl_handler" / cs.Int64ul]
        common = ["dce_size" / cs.Int64ul, "dce_base" / cs.Int64ul, "dlme_size" / cs.Int64ul,
                  "dlme_base" / cs.Int64ul, "dlme_entry" / cs.Int64ul]
        if layout == "v16":
            return [*common, "dlme_header_offset" / cs.Int64ul, "dlme_config_table" / cs.Int64ul,
                    "bl_context" / BlContextWide, "dl_launch" / cs.Int64ul]
        return [*common, "bl_context" / BlContextWide, "dl_handler" / cs.Int64ul]
    if tag == TAG["LOG_INFO"]:
        if v7:
            return ["format" / cs.Int16ul, "reserved" / cs.Int16ul, "addr" / cs.Int64ul, "size" / cs.Int32ul]
        if v9:
            return ["format" / cs.Int16ul, "reserved" / cs.Array(3, cs.Int16ul), "size" / cs.Int32ul,
                    "addr" / cs.Int64ul]
        return ["format" / cs.Int16ul, "reserved" / cs.Int16ul, "size" / cs.Int32ul, "addr" / cs.Int64ul]
    if tag == TAG["INTEL_INFO"]:
        if v7:
            return ["misc_enable" / cs.Int64ul, "mtrr_state" / MtrrState]
        head = ["reserved" / cs.Array(2, cs.Int16ul)] if v9 else []
        if layout in ("v12", "v16"):
            head = ["boot_params_addr" / cs.Int64ul]
        return [*head, "txt_heap" / cs.Int64ul, "saved_misc_enable_msr" / cs.Int64ul, "mtrr_state" / MtrrState]
    if tag in (TAG["ENTRY_POLICY"], TAG["UEFI_CONFIG"]):
        head = [] if layout in ("v7", "v9") else ["reserved" / cs.Array(2, cs.Int16ul)]
        item = _policy_entry(layout) if tag == TAG["ENTRY_POLICY"] else _uefi_config_entry(layout)
        return [*head, "revision" / cs.Int16ul, "nr_entries" / cs.Rebuild(cs.Int16ul, cs.len_(this.entries)),
                "entries" / cs.Array(this.nr_entries, item)]
    return ["payload" / cs.GreedyBytes]  # AMD_INFO, ARM_INFO, UEFI_INFO, unknown: opaque


def _policy_entry(layout: str) -> cs.Struct:
    where = ["entity" / cs.Int64ul, "size" / cs.Int64ul]
    return cs.Struct("pcr" / cs.Int16ul, "entity_type" / cs.Int16ul, "flags" / cs.Int16ul, "reserved" / cs.Int16ul,
                     *(where if layout == "v7" else where[::-1]), "evt_info" / EvtInfo)


def _uefi_config_entry(layout: str) -> cs.Struct:
    if layout == "v7":
        where = ["cfg" / cs.Int64ul, "size" / cs.Int32ul]
    else:
        where = ["size" / cs.Int32ul, "cfg" / cs.Int64ul]
    return cs.Struct("pcr" / cs.Int16ul, "reserved" / cs.Int16ul, *where, "evt_info" / EvtInfo)


@cache
def entry_struct(layout: str, tag: int) -> cs.Struct:
    """The whole entry (header included) as the generation ``layout`` declares it."""
    return cs.Struct(*_entry_header(layout, tag), "body" / cs.Struct(*_body(layout, tag)))


def _header_size(layout: str) -> int:
    return 8 if _wide(layout) else 4


FIXED_TAGS = (TAG["DL_INFO"], TAG["LOG_INFO"], TAG["INTEL_INFO"])
"""The fixed-size entries: their sizes per generation are how generations are told apart."""


@cache
def fixed_size(layout: str, tag: int) -> int:
    """The size of a FIXED_TAGS entry in the generation ``layout``, declared on first use: a table is
    told apart from most generations by its first entry, so a cold verification need not declare all 15."""
    return int(entry_struct(layout, tag).sizeof())


class Entry(Record):
    """One SLRT entry (SL slr_entry_hdr + body): ``fields`` are the body in the table's generation."""

    tag: int
    offset: int  # physical address of the entry header
    size: int
    fields: dict[str, Any]

    @property
    def name(self) -> str:
        """The SLR_ENTRY_* tag name (SL slr_table.h), or ``unknown(0xN)``."""
        return TAGS.get(self.tag, f"unknown(0x{self.tag:x})")


class LogInfo(Record):
    """SLR_ENTRY_LOG_INFO: where the DRTM event log buffer is and its format (spec §3, §4.3)."""

    format: str
    addr: int
    size: int


class Slrt(Record):
    """A parsed SLRT (SL slr_table): its header, its entries and the generation they were read in."""

    address: int
    layout: str
    candidates: tuple[str, ...]  # every generation the bytes fit; ``layout`` is the newest of them
    header: dict[str, Any]
    entries: tuple[Entry, ...]

    def entry(self, tag_name: str) -> Entry | None:
        """The first entry tagged ``tag_name`` (a TAGS name), or None."""
        return next((e for e in self.entries if e.tag == TAG[tag_name]), None)

    @property
    def log_info(self) -> LogInfo | None:
        """LOG_INFO decoded, or None when the entry is missing (SL_ERROR_SLRT_MISSING_ENTRY on a real boot)."""
        e = self.entry("LOG_INFO")
        if e is None:
            return None
        fmt = e.fields["format"]
        return LogInfo(LOG_FORMATS.get(fmt, f"unknown({fmt})"), e.fields["addr"], e.fields["size"])

    @property
    def policy(self) -> list[dict[str, Any]]:
        """ENTRY_POLICY's entries: what the kernel measures into which PCR (spec §3, §6)."""
        e = self.entry("ENTRY_POLICY")
        return list(e.fields["entries"]) if e is not None else []


def _walk(table: Region, size: int, wide: bool) -> list[tuple[int, int, int]]:
    """(tag, offset, size) of each entry before END; bounded by the header's ``size``."""
    hsize = 8 if wide else 4
    width = 4 if wide else 2
    out = []
    pos = HEADER_SIZE
    while pos < size:
        if pos + hsize > size:
            raise FormatError("SLRT entry", f"header at table offset {pos} runs past size {size}",
                              offset=table.address(pos))
        tag, esize = table.uint(pos, width), table.uint(pos + width, width)
        if tag == TAG["END"]:
            break
        if esize < hsize or pos + esize > size:
            raise FormatError(f"SLRT {TAGS.get(tag, f'tag 0x{tag:x}')} entry",
                              f"size {esize} is below its {hsize}-byte header or runs past the table size {size}",
                              field="size", offset=table.address(pos))
        out.append((tag, pos, esize))
        pos += esize
    return out


def _shape_is_wide(table: Region, size: int) -> bool:
    """u32/u32 entry headers have a small tag in the first u32; u16/u16 ones a non-zero u16 size (§7.2)."""
    if size < HEADER_SIZE + 4:
        raise FormatError("SLRT", f"size {size} leaves no room for an entry", field="size", offset=table.base)
    tag32 = table.uint(16, 4)
    if 1 <= tag32 <= 8 or tag32 == TAG["END"]:
        return True
    tag16, size16 = table.uint(16, 2), table.uint(18, 2)
    if (1 <= tag16 <= 8 or tag16 == TAG["END"]) and size16 >= 4:
        return False
    raise FormatError("SLRT", f"first entry header 0x{tag32:08x} is neither u32 nor u16 tag/size",
                      field="entries", offset=table.address(HEADER_SIZE))


def parse_slrt(table: Region) -> Slrt:
    """Parse a whole SLRT (``table`` holds at least ``size`` bytes from the table start; SL v16 slr_table)."""
    header = plain(table.parse(Header, "SLRT"))
    if header["magic"] != MAGIC:
        raise FormatError("SLRT", f"magic 0x{header['magic']:08x}, expected 0x{MAGIC:08x} ('MTRD')", field="magic",
                          offset=table.base)
    size = header["size"]
    if size > len(table) or size > header["max_size"]:
        raise FormatError("SLRT", f"size {size} exceeds max_size {header['max_size']} or the {len(table)} bytes "
                          "read", field="size", offset=table.base)
    wide = _shape_is_wide(table, size)
    walked = _walk(table, size, wide)
    family = ("v16", "v12", "v10") if wide else ("v9", "v7")
    candidates = tuple(lay for lay in family
                       if all(esize == fixed_size(lay, tag) for tag, _, esize in walked if tag in FIXED_TAGS))
    if not candidates:
        sizes = ", ".join(f"{TAGS.get(t, t)}={s}" for t, _, s in walked if t in FIXED_TAGS)
        raise FormatError("SLRT", f"entry sizes ({sizes}) match no Secure Launch generation", field="entries",
                          offset=table.base)
    layout = candidates[0]
    entries = []
    for tag, pos, esize in walked:
        name = f"SLRT {TAGS.get(tag, f'tag 0x{tag:x}')} entry"
        decl = entry_struct(layout, tag) if tag in TAGS else _opaque(layout)
        parsed = plain(table[pos : pos + esize].parse(decl, name))
        entries.append(Entry(tag, table.address(pos), esize, parsed["body"]))
    return Slrt(table.base, layout, candidates, header, tuple(entries))


@cache
def _opaque(layout: str) -> cs.Struct:
    width = cs.Int32ul if _wide(layout) else cs.Int16ul
    return cs.Struct("tag" / width, "size" / width, "body" / cs.Struct("payload" / cs.GreedyBytes))


def build_entry(layout: str, tag: int, fields: Mapping[str, Any]) -> bytes:
    """One entry with its size set to what the body takes."""
    what = f"SLRT {TAGS[tag]} entry"
    body = build(cs.Struct(*_body(layout, tag)), fields, what)
    return build(entry_struct(layout, tag), {"size": len(body) + _header_size(layout), "body": fields}, what)


def build_slrt(layout: str, entries: Sequence[tuple[str, Mapping[str, Any]]], *, max_size: int = 0x1000,
               magic: int = MAGIC, architecture: int = 1) -> bytes:
    """Header + entries + END, padded to ``max_size`` (the space the bootloader reserved)."""
    body = b"".join(build_entry(layout, TAG[name], fields) for name, fields in entries)
    end = TAG["END"].to_bytes(4, "little") + (8).to_bytes(4, "little") if _wide(layout) else \
        TAG["END"].to_bytes(2, "little") + (4).to_bytes(2, "little")
    size = HEADER_SIZE + len(body) + len(end)
    header = build(Header, {"magic": magic, "revision": 1, "architecture": architecture, "size": size,
                            "max_size": max_size}, "SLRT")
    return (header + body + end).ljust(max_size, b"\0")


def evt_info_text(raw: bytes) -> str:
    """An evt_info field as text: NUL-padded ASCII that may fill all 32 bytes (spec §3)."""
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")
