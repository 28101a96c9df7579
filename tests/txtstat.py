"""Reading tboot txt-stat's text output, the independent decoder our register decode is checked against."""

from __future__ import annotations

import re

REG_LINE = re.compile(r"^\s*([A-Z0-9_.]+):\s+(0x[0-9a-fA-F]+)")
STS_NAMES = {  # txt-stat flag name -> sld.formats.registers.STS_BITS name
    "senter_done": "senter_done", "sexit_done": "sexit_done", "mem_config_lock": "mem_config_lock",
    "private_open": "private_open", "locality_1_open": "locality1_open", "locality_2_open": "locality2_open",
}
FLAG_LINE = re.compile(r"^\s*([a-z0-9_]+):\s+(TRUE|FALSE|0x[0-9a-fA-F]+)\s*$")


def parse_txt_stat(text: str) -> tuple[dict[str, int], dict[str, dict[str, bool | int]]]:
    """Register values and, under each register, its decoded sub-fields (flags or numbers)."""
    regs: dict[str, int] = {}
    fields: dict[str, dict[str, bool | int]] = {}
    current = ""
    for line in text.splitlines():
        if m := REG_LINE.match(line):
            current = m.group(1)
            regs.setdefault(current, int(m.group(2), 16))
            continue
        if current and (m := FLAG_LINE.match(line)):
            value = m.group(2)
            fields.setdefault(current, {})[m.group(1)] = (
                value == "TRUE" if value in ("TRUE", "FALSE") else int(value, 16)
            )
        if "Intel(r) TXT Configuration Registers" not in line and line and not line.startswith((" ", "\t")):
            current = ""
    return regs, fields


BIOS_LINE = re.compile(r"^\s+([a-z_\[\]0-9]+):\s+(0x[0-9a-fA-F]+|\d+)")


def parse_bios_data(text: str) -> dict[str, int]:
    """The ``bios_data`` block of ``txt-stat --heap``: field -> value (element fields included)."""
    out: dict[str, int] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("bios_data"):
            inside = True
            continue
        if inside and not line.startswith(("\t", " ")):
            break
        if inside and (m := BIOS_LINE.match(line)):
            out[m.group(1)] = int(m.group(2), 0)
    return out
