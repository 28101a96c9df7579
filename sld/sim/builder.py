"""Building what a scenario's platform shows, with the same format declarations sld parses with.

Two views of one platform: the physical-memory image (TXT config spaces, heap, SLRT, event log at
their physical addresses, read through the same mmap path as /dev/mem) and the securityfs view
(``slaunch/txt/*`` and ``slaunch/eventlog``) a Secure Launch kernel exports. The manifest records
where everything is and the PCR values the launch leaves, replayed from the built log.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from sld.errors import ConfigError
from sld.formats import heap, slrt
from sld.formats._util import Region
from sld.formats.eventlog import parse_log
from sld.formats.registers import (
    SECURITYFS_REGISTER,
    SECURITYFS_WIDTH,
    TXT_PRIV_BASE,
    TXT_PUB_BASE,
    build_registers,
    format_securityfs_value,
)
from sld.formats.tcg import NewEvent, build_crypto_agile, build_tpm12_container
from sld.platform.image import write_image
from sld.records import Record
from sld.replay import DRTM_PCRS, replay
from sld.sim.image import write_manifest
from sld.sim.scenarios import (
    LAYOUTS,
    WINDOW_ENTITIES,
    PlatformSpec,
    Scenario,
    SimEvent,
    events_for,
    scenario,
    sinit_hash,
    sinit_image,
)

LOG_BUFFER_SIZE = 0x10000
STS_LAUNCHED = 0x18041  # SENTER.DONE, MEM-CONFIG-LOCK, LOCALITY1/2.OPEN (SDG B.1.1)
STS_NOT_LAUNCHED = 0x3  # SENTER.DONE and SEXIT.DONE: the tboot-devel false positives
STS_AFTER_RESET = 0x2  # SEXIT.DONE only: a reset after a failed launch
DIDVID = 0x1B00C8086

# The physical memory map of the simulated server (all below 4 GiB, as Secure Launch requires).
SLRT_BASE = 0x7A000000
SLRT_MAX_SIZE = 0x1000
LOG_BASE = 0x7A010000
BOOT_PARAMS = 0x7A100000
HEAP_BASE = 0x7BE00000
HEAP_SIZE = 0xE0000
SINIT_BASE = 0x7BEE0000
SINIT_SIZE = 0x20000
DPR = 0x7C000031  # locked, 3 MiB below 0x7C000000
MLE_BASE = 0x1000000
ENTITY_TYPE = {b"Measured SLR Table": 1, b"Measured boot parameters": 2, b"Measured Kernel command line": 4,
               b"Measured EFI memory map": 5, b"Measured Kernel initrd": 6}


class Platform(Record):
    """One simulated launch: the register page, heap, SLRT and log a scenario leaves in memory, built with
    the same sld.formats declarations sld parses with, and the events it measured (before any tampering)."""

    scenario: Scenario
    layout: str
    registers: dict[str, Any]
    log: bytes
    events: tuple[SimEvent, ...]
    heap: bytes = b""
    slrt: bytes = b""

    def expected_pcrs(self) -> dict[str, dict[str, str]]:
        """PCR17-22 as the launch leaves them: the replay of the log before any tampering."""
        values = replay(parse_log(self.untampered_log()), pcrs=DRTM_PCRS).values
        return {bank: {str(p): v.hex() for p, v in pcrs.items()} for bank, pcrs in values.items()}

    def untampered_log(self) -> bytes:
        """The log as the launch wrote it, before the scenario's tampering: what the TPM's PCRs replay."""
        return _build_log(self.scenario.spec, self.events)

    def regions(self) -> dict[int, bytes]:
        """Physical address -> bytes of everything a launched platform holds in memory."""
        page = build_registers(self.registers)
        out = {TXT_PRIV_BASE: page, TXT_PUB_BASE: page}
        if self.scenario.spec.launched:
            out |= {HEAP_BASE: self.heap, SLRT_BASE: self.slrt, LOG_BASE: self.log,
                    SINIT_BASE: sinit_image(self.scenario.spec)}
        return out

    def write_image(self, path: str | os.PathLike[str]) -> Path:
        """The image at ``path`` and its manifest beside it (``PATH.json``); returns the manifest path."""
        write_image(path, self.regions())
        manifest = Path(f"{path}.json")
        write_manifest(manifest, self.manifest())
        return manifest

    def manifest(self) -> dict[str, Any]:
        """What a test or an operator checks a verdict against: the scenario's expected verdict (with and
        without clean's policy), layout, banks, register values, addresses and expected PCR17-22."""
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "layout": self.layout,
            "verdict": self.scenario.verdict,
            "exit_code": self.scenario.exit_code,
            "with_clean_policy": self.scenario.with_clean_policy(),
            "log_format": self.scenario.spec.log_format,
            "banks": list(self.scenario.spec.banks),
            "tpm_banks": list(self.scenario.spec.allocated),
            "registers": {k: f"0x{v:x}" for k, v in self.registers.items() if isinstance(v, int)},
            "addresses": {"heap": HEAP_BASE, "heap_size": HEAP_SIZE, "slrt": SLRT_BASE, "log": LOG_BASE,
                          "log_size": len(self.log)} if self.scenario.spec.launched else {},
            "expected_pcrs": self.expected_pcrs(),
        }

    def write_securityfs(self, directory: str | os.PathLike[str]) -> None:
        """The Secure Launch kernel's securityfs view of this launch (``txt/*`` register text, ``eventlog``;
        spec §1.5) under ``directory``, with the manifest beside it."""
        root = Path(directory)
        (root / "txt").mkdir(parents=True, exist_ok=True)
        for name, reg in SECURITYFS_REGISTER.items():
            width = SECURITYFS_WIDTH[name] * 4
            (root / "txt" / name).write_bytes(format_securityfs_value(name, self.registers[reg] & ((1 << width) - 1)))
        (root / "eventlog").write_bytes(self.log)
        (root / "manifest.json").write_text(_json(self.manifest()))


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2) + "\n"


def _build_log(spec: PlatformSpec, events: tuple[SimEvent, ...]) -> bytes:
    new = [NewEvent(e.pcr, e.type, e.digests, e.data) for e in events]
    if spec.log_format == "tpm12":
        return build_tpm12_container(new, container_size=LOG_BUFFER_SIZE // 2)
    return build_crypto_agile(spec.banks, new, size=LOG_BUFFER_SIZE)


def _tamper(events: list[SimEvent], index: int) -> list[SimEvent]:
    """Replace one window event's data and digest after the fact, as an attacker editing the log would."""
    window = [i for i, e in enumerate(events) if e.window]
    target = window[index]
    ev = events[target]
    data = ev.data + b" (edited)"
    digests = {bank: hashlib.new(bank, data).digest() for bank in ev.digests}
    return events[:target] + [replace(ev, data=data, digests=digests)] + events[target + 1 :]


def _registers(spec: PlatformSpec) -> dict[str, int]:
    if not spec.launched:
        sts = STS_NOT_LAUNCHED
    elif spec.errorcode & 0xFFFF8000 == 0xC0008000:
        sts = STS_AFTER_RESET
    else:
        sts = STS_LAUNCHED
    heap_regs = {"HEAP.BASE": HEAP_BASE, "HEAP.SIZE": HEAP_SIZE} if spec.launched else {}
    errorcode = spec.errorcode if spec.previous_errorcode is None else spec.previous_errorcode
    return {"STS": sts, "ESTS": 0, "ERRORCODE": errorcode, "DIDVID": DIDVID, "VER.EMIF": 0x80000000,
            "SCRATCHPAD": 0, "E2STS": 0x2 if sts == STS_LAUNCHED else 0x0, "SINIT.BASE": SINIT_BASE,
            "SINIT.SIZE": SINIT_SIZE, "DPR": DPR, **heap_regs}


def _slrt(spec: PlatformSpec, layout: str, log_size: int) -> bytes:
    """GRUB's default SLRT: DL_INFO, LOG_INFO, ENTRY_POLICY, INTEL_INFO (spec §3, §6)."""
    policy = [{"pcr": pcr, "entity_type": ENTITY_TYPE[info], "flags": 1, "reserved": 0,
               "entity": BOOT_PARAMS + 0x1000 * i, "size": 0x1000, "evt_info": info.ljust(32, b"\0")}
              for i, (pcr, info) in enumerate(WINDOW_ENTITIES)]
    dl_info: dict[str, Any] = {name: 0 for name in ("dce_size", "dce_base", "dlme_size", "dlme_base", "dlme_entry",
                                                    "dl_handler", "dlme_header_offset", "dlme_config_table",
                                                    "dl_launch")}
    dl_info |= {"dce_base": SINIT_BASE, "dce_size": SINIT_SIZE, "dlme_base": MLE_BASE, "dlme_size": 0x800000,
                "bl_context": {"bootloader": 1, "reserved": [0, 0, 0] if layout != "v7" else 0, "context": 0}}
    mtrrs = {"default_mem_type": 6, "mtrr_vcnt": 2,
             "mtrr_pair": [{"physbase": 0, "physmask": 0} for _ in range(32)]}
    intel = {"boot_params_addr": BOOT_PARAMS, "txt_heap": HEAP_BASE, "saved_misc_enable_msr": 0x850089,
             "misc_enable": 0x850089, "reserved": [0, 0], "mtrr_state": mtrrs}
    log_info = {"format": 1 if spec.log_format == "tpm12" else 2, "reserved": [0, 0, 0] if layout == "v9" else 0,
                "addr": LOG_BASE, "size": log_size}
    entries: list[tuple[str, dict[str, Any]]] = [("DL_INFO", dl_info)]
    if spec.log_info:
        entries.append(("LOG_INFO", log_info))
    policy_head = {"revision": 1, "reserved": [0, 0], "entries": policy}
    entries += [("ENTRY_POLICY", policy_head), ("INTEL_INFO", intel)]
    return slrt.build_slrt(layout, entries, max_size=SLRT_MAX_SIZE, magic=spec.slrt_magic)


def _intel_info_address(table: bytes, layout: str) -> int:
    parsed = slrt.parse_slrt(Region(table, SLRT_BASE)) if table[:4] == slrt.MAGIC.to_bytes(4, "little") else None
    entry = parsed.entry("INTEL_INFO") if parsed else None
    return entry.offset if entry else 0


def _heap(spec: PlatformSpec, layout: str, slrt_table: bytes, log: bytes) -> bytes:
    """The four heap tables as BIOS, loader and SINIT leave them for this launch (spec §2)."""
    tpm2 = spec.log_format != "tpm12"
    bios = heap.build_table("BiosData", {"version": 6 if tpm2 else 5, "bios_sinit_size": 0, "lcp_pd_base": 0,
                                         "lcp_pd_size": 0, "num_log_procs": 8, "sinit_flags": 0, "mle_flags": 0x4},
                            [(1, {"major": 2, "minor": 1, "revision": 0}),
                             (2, {"num_acms": 1, "acm_addrs": [0xFFE00000]})])
    os_mle = heap.build_os_mle(layout, {"boot_params_addr": BOOT_PARAMS, "reserved": 0, "slrt": SLRT_BASE,
                                        "txt_info": _intel_info_address(slrt_table, layout), "ap_wake_block": 0x9D000,
                                        "ap_wake_block_size": 0x3000, "mle_scratch": bytes(64)})
    if tpm2:
        used = parse_log(log).end if spec.truncate_log_at is None else len(log)
        pointer = [(heap.ELEMENT_LOG_PTR2_1, {"address": LOG_BASE, "allocated_size": len(log),
                                              "first_record_offset": 0, "next_record_offset": used})]
    else:
        pointer = [(heap.ELEMENT_TPM12_LOG_PTR, {"address": LOG_BASE})]
    os_sinit = heap.build_table("OsSinitData", {
        "version": 7 if tpm2 else 6, "flags": 0, "mle_ptab": 0x2000000, "mle_size": 0x800000,
        "mle_hdr_base": 0x34, "vtd_pmr_lo_base": 0, "vtd_pmr_lo_size": 0x7A000000, "vtd_pmr_hi_base": 0,
        "vtd_pmr_hi_size": 0, "lcp_po_base": 0, "lcp_po_size": 0, "capabilities": 0x227 if tpm2 else 0x27,
        "efi_rsdp": 0}, pointer)
    mdrs = [{"address": 0, "length": 0x7A000000, "type": 0, "reserved": bytes(7)},
            {"address": 0x100000000, "length": 0x80000000, "type": 0, "reserved": bytes(7)}]
    sinit_fields = {"version": 9 if tpm2 else 8, "bios_acm_id": bytes(20), "edx_senter_flags": 0, "mseg_valid": 0,
                    "sinit_hash": sinit_hash(spec), "mle_hash": hashlib.sha1(spec.seed + spec.kernel).digest(),
                    "stm_hash": bytes(20),
                    "lcp_policy_hash": bytes(20), "policy_control": 0, "rlp_wakeup_addr": 0, "reserved": 0,
                    "num_mdrs": len(mdrs), "mdrs_off": 0, "vtd_dmar_table_size": 0, "vtd_dmar_table_off": 0,
                    "proc_scrtm_status": 1}
    head = heap.build_table("SinitMleData", sinit_fields)  # where the MDR table will follow
    sinit_fields["mdrs_off"] = len(head) + 8  # offsets count from the table's size field (spec §2.5)
    sinit_mle = heap.build_table("SinitMleData", sinit_fields, tail=heap.build_mdrs(mdrs))
    return heap.build_heap([bios, os_mle, os_sinit, sinit_mle], HEAP_SIZE)


def build_platform(name: str | Scenario, layout: str | None = None) -> Platform:
    """The scenario's platform (a named one, or a benchmark's own) in ``layout`` (default: its own generation)."""
    sc = scenario(name) if isinstance(name, str) else name
    name = sc.name
    spec = sc.spec
    layout = layout or spec.layout
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}", key="layout")
    if spec.window_extended is not None and layout == "v16":
        raise ConfigError(f"{name} needs a kernel that defers its extends (layouts v7-v12); v15+ kernels extend "
                          "before they log", key="layout")
    events = tuple(events_for(spec, layout))
    shown = list(events)
    if spec.tamper_event is not None:
        shown = _tamper(shown, spec.tamper_event)
    log = _build_log(spec, tuple(shown))
    if spec.truncate_log_at is not None:
        log = log[: spec.truncate_log_at]
    if not spec.launched:
        return Platform(sc, layout, _registers(spec), log, events)
    table = _slrt(spec, layout, len(log))
    return Platform(sc, layout, _registers(spec), log, events, _heap(spec, layout, table, log), table)
