"""The TXT heap: four size-prefixed tables and their extended data elements (SDG App. C; spec §2).

Each table is one construct declaration per spec table, versioned with ``If`` on the table's own
version field, so the same declaration parses what a BIOS/SINIT/loader wrote and builds what the
simulator writes. OsMleData belongs to the loader: Secure Launch kept version 1 while moving fields
three times (spec §2.3, §7.1), so it is offered as *candidate* layouts and ``discover`` probes each
one's SLRT pointer for the magic.

Walks are bounded: a record or element size of 0, below its header, or past the region is a
FormatError naming the table, the field and the physical address; never a loop, never a read past
the heap.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import field
from typing import Any, NamedTuple, overload

import construct as cs
from construct import this

from sld.errors import FormatError
from sld.formats._util import Region, build
from sld.records import Record

TABLES = ("BiosData", "OsMleData", "OsSinitData", "SinitMleData")

# Extended data element types [SDG C.1-C.5; spec §2.6]
ELEMENT_TYPES = {0: "END", 1: "BIOS_SPEC_VER", 2: "ACM", 3: "STM", 4: "CUSTOM", 5: "TPM_EVENT_LOG_PTR",
                 6: "MADT", 7: "EVENT_LOG_POINTER2", 8: "EVENT_LOG_POINTER2_1", 9: "MCFG"}
ELEMENT_END = 0
ELEMENT_LOG_PTR2_1 = 8
ELEMENT_TPM12_LOG_PTR = 5

# Known element payloads; anything else stays opaque bytes (unknown types must be skipped, SDG C.1).
ELEMENT_DATA: dict[int, cs.Construct] = {
    1: cs.Struct("major" / cs.Int16ul, "minor" / cs.Int16ul, "revision" / cs.Int16ul),
    2: cs.Struct("num_acms" / cs.Int32ul, "acm_addrs" / cs.Array(this.num_acms, cs.Int64ul)),
    5: cs.Struct("address" / cs.Int64ul),
    7: cs.Struct("count" / cs.Int32ul, "logs" / cs.Array(this.count, cs.Struct(
        "hash_alg" / cs.Int16ul, "reserved" / cs.Int16ul, "address" / cs.Int64ul,
        "allocated_size" / cs.Int32ul, "first_record_offset" / cs.Int32ul, "next_record_offset" / cs.Int32ul))),
    8: cs.Struct("address" / cs.Int64ul, "allocated_size" / cs.Int32ul, "first_record_offset" / cs.Int32ul,
                 "next_record_offset" / cs.Int32ul),
}

ElementHeader = cs.Struct("type" / cs.Int32ul, "size" / cs.Int32ul)
ELEMENT_HEADER = "<II"
"""ElementHeader as a ``struct`` format, for the element walk (a 16 MiB heap holds 2M elements)."""
Element = cs.Struct(
    "type" / cs.Int32ul,
    "size" / cs.Rebuild(cs.Int32ul, cs.len_(this.data) + 8),
    "data" / cs.Bytes(this.size - 8),
)

BiosData = cs.Struct(
    "version" / cs.Int32ul,
    "bios_sinit_size" / cs.Int32ul,
    "lcp_pd_base" / cs.Int64ul,
    "lcp_pd_size" / cs.Int64ul,
    "num_log_procs" / cs.Int32ul,
    "sinit_flags" / cs.If(this.version >= 3, cs.Int32ul),
    "mle_flags" / cs.If(this.version >= 5, cs.Int32ul),
)

# OsMleData as Secure Launch writes it, version 1 in all three shapes [spec §2.3]
OS_MLE_LAYOUTS: dict[str, cs.Struct] = {
    "v7": cs.Struct("version" / cs.Const(1, cs.Int32ul), "boot_params_addr" / cs.Int32ul, "slrt" / cs.Int64ul,
                    "txt_info" / cs.Int64ul, "ap_wake_block" / cs.Int32ul, "ap_wake_block_size" / cs.Int32ul,
                    "mle_scratch" / cs.Bytes(64)),
    "v10": cs.Struct("version" / cs.Const(1, cs.Int32ul), "reserved" / cs.Int32ul,
                     "boot_params_addr" / cs.Int64ul, "slrt" / cs.Int64ul, "txt_info" / cs.Int64ul,
                     "ap_wake_block" / cs.Int32ul, "ap_wake_block_size" / cs.Int32ul,
                     "mle_scratch" / cs.Bytes(64)),
    "v12": cs.Struct("version" / cs.Const(1, cs.Int32ul), "reserved" / cs.Int32ul, "slrt" / cs.Int64ul,
                     "txt_info" / cs.Int64ul, "ap_wake_block" / cs.Int32ul, "ap_wake_block_size" / cs.Int32ul,
                     "mle_scratch" / cs.Bytes(64)),
}
OS_MLE_LAYOUT_OF = {"v7": "v7", "v9": "v7", "v10": "v10", "v12": "v12", "v16": "v12"}
"""SLRT/structure generation -> OsMleData shape (docs/design.md)."""

OsSinitData = cs.Struct(
    "version" / cs.Int32ul,
    "flags" / cs.Int32ul,
    "mle_ptab" / cs.Int64ul,
    "mle_size" / cs.Int64ul,
    "mle_hdr_base" / cs.Int64ul,
    "vtd_pmr_lo_base" / cs.Int64ul,
    "vtd_pmr_lo_size" / cs.Int64ul,
    "vtd_pmr_hi_base" / cs.Int64ul,
    "vtd_pmr_hi_size" / cs.Int64ul,
    "lcp_po_base" / cs.Int64ul,
    "lcp_po_size" / cs.Int64ul,
    "capabilities" / cs.Int32ul,
    "efi_rsdp" / cs.If(this.version >= 5, cs.Int64ul),
)

Mdr = cs.Struct("address" / cs.Int64ul, "length" / cs.Int64ul, "type" / cs.Int8ul, "reserved" / cs.Bytes(7))

SinitMleData = cs.Struct(
    "version" / cs.Int32ul,
    "bios_acm_id" / cs.Bytes(20),
    "edx_senter_flags" / cs.Int32ul,
    "mseg_valid" / cs.Int64ul,
    "sinit_hash" / cs.Bytes(20),
    "mle_hash" / cs.Bytes(20),
    "stm_hash" / cs.Bytes(20),
    "lcp_policy_hash" / cs.Bytes(20),
    "policy_control" / cs.Int32ul,
    "rlp_wakeup_addr" / cs.Int32ul,
    "reserved" / cs.Int32ul,
    "num_mdrs" / cs.Int32ul,
    "mdrs_off" / cs.Int32ul,
    "vtd_dmar_table_size" / cs.Int32ul,
    "vtd_dmar_table_off" / cs.Int32ul,
    "proc_scrtm_status" / cs.If(this.version >= 8, cs.Int32ul),
)

# Where each table's extended elements start, as a function of its version (None: the version has none).
def _bios_elements(version: int) -> int | None:
    return None if version < 4 else (32 if version == 4 else 36)


def _os_sinit_elements(version: int) -> int | None:
    return 92 if version >= 6 else None


def _sinit_mle_elements(version: int) -> int | None:
    return 148 if version >= 9 else None


TABLE_DECLS: dict[str, tuple[cs.Struct, Any]] = {
    "BiosData": (BiosData, _bios_elements),
    "OsSinitData": (OsSinitData, _os_sinit_elements),
    "SinitMleData": (SinitMleData, _sinit_mle_elements),
}


class ExtElement(NamedTuple):
    """One extended data element (SDG C.1): ``fields`` decoded for the types ELEMENT_DATA declares.

    A named tuple rather than a frozen dataclass: a walk of a 16 MiB heap can make 2M of them."""

    type: int
    offset: int  # physical address of the element header
    data: bytes
    fields: dict[str, Any] | None  # decoded payload for the known types

    @property
    def name(self) -> str:
        """The SDG C.1 type name (HEAP_EXTDATA_TYPE_*), or ``unknown(0xN)`` for a type to be skipped."""
        return ELEMENT_TYPES.get(self.type, f"unknown(0x{self.type:x})")


class ExtElements(Sequence[ExtElement]):
    """A table's extended elements as the walk found them: (type, offset, size) kept in arrays over the
    table's bytes, each :class:`ExtElement` made when asked for. A 16 MiB heap can hold 2M 8-byte
    elements; as objects they would take some 200 MB, as arrays 24 MB (issue 17: bounded memory)."""

    __slots__ = ("_table", "_types", "_offsets", "_sizes", "_fields")

    def __init__(self, table: Region) -> None:
        self._table = table
        self._types, self._offsets, self._sizes = array("I"), array("I"), array("I")
        self._fields: dict[int, dict[str, Any]] = {}  # index -> decoded payload, for the ELEMENT_DATA types

    def __len__(self) -> int:
        return len(self._types)

    def _make(self, i: int) -> ExtElement:
        pos = self._offsets[i]
        return ExtElement(self._types[i], self._table.base + pos, self._table.copy(pos + 8, pos + self._sizes[i]),
                          self._fields.get(i))

    @overload
    def __getitem__(self, index: int) -> ExtElement: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[ExtElement, ...]: ...

    def __getitem__(self, index: int | slice) -> ExtElement | tuple[ExtElement, ...]:
        if isinstance(index, slice):
            return tuple(self._make(i) for i in range(*index.indices(len(self))))
        return self._make(range(len(self))[index])

    def __iter__(self) -> Iterator[ExtElement]:
        copy, base, fields = self._table.copy, self._table.base, self._fields  # 2M elements: names bound once
        for i, (etype, pos, size) in enumerate(zip(self._types, self._offsets, self._sizes, strict=True)):
            yield ExtElement(etype, base + pos, copy(pos + 8, pos + size), fields.get(i))

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ExtElements({len(self)} at 0x{self._table.base:x})"

    def first(self, etype: int) -> ExtElement | None:
        """The first element of type ``etype``, found in the type array (no element made before it)."""
        try:
            return self._make(self._types.index(etype))
        except ValueError:
            return None


class HeapTable(Record):
    """One heap record: ``address`` is its u64 size field, ``data`` what follows it (size - 8 bytes)."""

    name: str
    address: int
    size: int
    data: bytes
    fields: dict[str, Any] = field(default_factory=dict)
    elements: Sequence[ExtElement] = ()
    mdrs: tuple[dict[str, Any], ...] = ()

    @property
    def data_address(self) -> int:
        """Where the table's own fields start: just past its u64 size (SDG Table C-1)."""
        return self.address + 8

    def element(self, etype: int) -> ExtElement | None:
        """The first element of type ``etype`` (SDG C.1 allows each type once per table), or None."""
        if isinstance(self.elements, ExtElements):
            return self.elements.first(etype)
        return next((e for e in self.elements if e.type == etype), None)


class Heap(Record):
    """The TXT heap at HEAP.BASE: its four tables in their SDG order (Table C-1)."""

    base: int
    size: int
    tables: tuple[HeapTable, ...]

    def table(self, name: str) -> HeapTable:
        """The table called ``name`` (one of TABLES)."""
        return next(t for t in self.tables if t.name == name)

    @property
    def bios_data(self) -> HeapTable:
        """BiosData: written by the BIOS (SDG C.2)."""
        return self.table("BiosData")

    @property
    def os_mle_data(self) -> HeapTable:
        """OsMleData: the loader's, kept raw; its shape is decided through the SLRT (:func:`os_mle_for`, spec §2.3)."""
        return self.table("OsMleData")

    @property
    def os_sinit_data(self) -> HeapTable:
        """OsSinitData: the loader's request to SINIT, with the event log pointer (SDG C.4)."""
        return self.table("OsSinitData")

    @property
    def sinit_mle_data(self) -> HeapTable:
        """SinitMleData: what SINIT reports back, with the MDRs (SDG C.5)."""
        return self.table("SinitMleData")


def plain(obj: Any) -> Any:
    """A construct Container as plain dicts/lists (no ``_io``), for dataclasses and JSON."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj


def parse_elements(table: Region, offset: int, name: str) -> ExtElements:
    """Walk ``table`` from ``offset`` element by element until END (SDG C.1).

    Headers are read in place and each known payload parsed from its own bounded slice, so the walk is
    linear in the table size; a size below the 8-byte header or past the table is an error naming the
    element's address.
    """
    out = ExtElements(table)
    pos = offset
    end, unpack = len(table), table.unpack  # 2M elements fit in a 16 MiB heap: names bound once
    types, offsets, sizes = out._types.append, out._offsets.append, out._sizes.append
    while True:
        if pos + 8 > end:
            raise FormatError(name, "extended elements run past the table without an END element",
                              field="ExtDataElements", offset=table.address(pos))
        etype, size = unpack(ELEMENT_HEADER, pos)
        if size < 8 or pos + size > end:
            raise FormatError(f"{name} element", f"size {size} does not fit the {end - pos} bytes left in the table",
                              field="size", offset=table.address(pos))
        decl = ELEMENT_DATA.get(etype)
        if decl is not None:
            out._fields[len(out)] = plain(table[pos + 8 : pos + size].parse(decl, f"{name} {ELEMENT_TYPES[etype]} "
                                                                             "element"))
        types(etype)
        offsets(pos)
        sizes(size)
        if etype == ELEMENT_END:
            return out
        pos += size


def _parse_table(name: str, record: Region) -> HeapTable:
    """One size-prefixed record: ``record`` starts at its u64 size field (spec §2.1)."""
    raw = record.copy(8, len(record))
    data = Region(raw, record.base + 8)  # over the table's own copy, which its elements keep
    if name not in TABLE_DECLS:
        return HeapTable(name, record.base, len(record), raw)
    decl, elements_at = TABLE_DECLS[name]
    fields = plain(data.parse(decl, name))
    start = elements_at(fields["version"])
    elements: Sequence[ExtElement] = parse_elements(data, start, name) if start is not None else ()
    mdrs: tuple[dict[str, Any], ...] = ()
    if name == "SinitMleData":
        mdrs = _parse_mdrs(fields, data)
    return HeapTable(name, record.base, len(record), raw, fields, elements, mdrs)


def _parse_mdrs(fields: Mapping[str, Any], data: Region) -> tuple[dict[str, Any], ...]:
    """SinitMdrTableOffset counts from the table's size field, 8 bytes before the data (spec §2.5)."""
    count, off = fields["num_mdrs"], fields["mdrs_off"]
    if count == 0:
        return ()
    start = off - 8
    if start < 0 or start + 24 * count > len(data):
        raise FormatError("SinitMleData", f"{count} MDRs at offset {off} overrun the {len(data) + 8}-byte table",
                          field="SinitMdrTableOffset", offset=data.base)
    table = data[start : start + 24 * count].parse(cs.Array(count, Mdr), "SinitMleData MDR table")
    return tuple(plain(m) for m in table)


def parse_heap(heap: Region) -> Heap:
    """Split the heap (HEAP.BASE, HEAP.SIZE bytes) into its four tables with tboot's checks (spec §2.1)."""
    tables = []
    pos = 0
    for name in TABLES:
        if pos + 8 > len(heap):
            raise FormatError("TXT heap", f"{name} size field lies past HEAP.SIZE 0x{len(heap):x}", field=name,
                              offset=heap.address(pos))
        size = heap.uint(pos, 8)
        if size < 8 or size > len(heap) - pos:
            raise FormatError("TXT heap", f"{name} size 0x{size:x} is below 8 or past the end of the heap "
                              f"(0x{len(heap) - pos:x} bytes left)", field=f"{name}.size", offset=heap.address(pos))
        tables.append(_parse_table(name, heap[pos : pos + size]))
        pos += size
    return Heap(heap.base, len(heap), tuple(tables))


class OsMleData(Record):
    """OsMleData decoded in one Secure Launch shape (spec §2.3): ``layout`` names it, ``fields`` hold it."""

    layout: str
    fields: dict[str, Any]


def os_mle_candidates(table: HeapTable) -> tuple[OsMleData, ...]:
    """Every OsMleData shape the bytes fit (version 1, long enough), newest first (spec §7.1)."""
    out = []
    for layout in ("v12", "v10", "v7"):
        decl = OS_MLE_LAYOUTS[layout]
        if len(table.data) >= decl.sizeof():
            try:
                out.append(OsMleData(layout, plain(decl.parse(table.data))))
            except cs.ConstructError:
                continue
    return tuple(out)


def os_mle_for(candidates: Sequence[OsMleData], slrt_address: int, generation: str) -> OsMleData:
    """The one decision of OsMleData's shape: the candidate pointing at the SLRT found, in its generation's shape.

    v7 and v12 put the slrt pointer at the same offset (spec §2.3), so the pointer alone cannot tell
    them apart; the SLRT's generation, told apart by its own structure, does. ``candidates`` must
    hold at least one shape whose ``slrt`` is ``slrt_address`` (the one the magic was found through).
    """
    pointing = [c for c in candidates if c.fields["slrt"] == slrt_address]
    shape = OS_MLE_LAYOUT_OF[generation]
    return next((c for c in pointing if c.layout == shape), pointing[0])


def event_log_pointer(table: HeapTable) -> dict[str, Any] | None:
    """OsSinitData's EVENT_LOG_POINTER2_1 (TCG log) or TPM_EVENT_LOG_PTR (1.2 container) fields."""
    for etype in (ELEMENT_LOG_PTR2_1, ELEMENT_TPM12_LOG_PTR):
        el = table.element(etype)
        if el is not None and el.fields is not None:
            return dict(el.fields, type=el.name)
    return None


# --- building (the simulator) --------------------------------------------------------------------

def build_elements(elements: Sequence[tuple[int, Mapping[str, Any] | bytes]], table: str) -> bytes:
    """Elements as (type, fields-or-bytes), END appended."""
    out = b""
    for etype, payload in [*elements, (ELEMENT_END, b"")]:
        data = payload if isinstance(payload, bytes) else build(ELEMENT_DATA[etype], payload, f"{table} element")
        out += build(Element, {"type": etype, "data": data}, f"{table} element")
    return out


def build_table(name: str, fields: Mapping[str, Any],
                elements: Sequence[tuple[int, Mapping[str, Any] | bytes]] = (), tail: bytes = b"") -> bytes:
    """One table's data (without its size field): declared fields, padding up to its elements, tail."""
    decl, elements_at = TABLE_DECLS[name]
    out = build(decl, fields, name)
    start = elements_at(fields["version"])
    if start is not None:
        out = out.ljust(start, b"\0") + build_elements(elements, name)
    return out + tail


def build_mdrs(mdrs: Sequence[Mapping[str, Any]]) -> bytes:
    """SinitMleData's memory descriptor records (SDG Table C-9), as the simulator's SINIT writes them."""
    return build(cs.Array(len(mdrs), Mdr), mdrs, "SinitMleData MDR table")


def build_os_mle(layout: str, fields: Mapping[str, Any]) -> bytes:
    """OsMleData in the shape ``layout`` (a generation or a shape name) uses, version 1 (spec §2.3)."""
    return build(OS_MLE_LAYOUTS[OS_MLE_LAYOUT_OF.get(layout, layout)], {"version": 1, **fields}, "OsMleData")


def build_heap(tables: Sequence[bytes], size: int) -> bytes:
    """Size-prefix the four tables (each size counts its own 8 bytes) and pad to HEAP.SIZE."""
    out = b"".join((len(t) + 8).to_bytes(8, "little") + t for t in tables)
    if len(out) > size:
        raise FormatError("TXT heap", f"tables take 0x{len(out):x} bytes, more than HEAP.SIZE 0x{size:x}")
    return out.ljust(size, b"\0")
