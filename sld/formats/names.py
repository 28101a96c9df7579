"""The names of the TCG and Intel TXT vocabulary: algorithms, event types, markers and signatures.

One home for the numbers every stage speaks about (the log parser and its construct declarations, the
TPM layer, the policy, the simulator), so that no module takes its constants from another stage's
parser. Plain data: importing it costs nothing a log-parsing process would notice.
"""

from __future__ import annotations

# TPM2 algorithm ids -> (bank name, digest size) [spec §4.3; TCG Algorithm Registry]
ALGORITHMS: dict[int, tuple[str, int]] = {
    0x0004: ("sha1", 20),
    0x000B: ("sha256", 32),
    0x000C: ("sha384", 48),
    0x000D: ("sha512", 64),
    0x0012: ("sm3_256", 32),
}
ALG_ID = {name: alg for alg, (name, _) in ALGORITHMS.items()}
DIGEST_SIZE = {name: size for name, size in ALGORITHMS.values()}
HASHLIB_NAMES = {"sm3_256": "sm3"}  # TCG bank name -> OpenSSL's (TCG Algorithm Registry: TPM_ALG_SM3_256)


def hashlib_name(bank: str) -> str:
    """The name hashlib knows a TCG algorithm by (sm3_256 is OpenSSL's "sm3", where OpenSSL has it): one
    mapping for every digest sld computes by TCG name, a PCR bank's replay as an object's Name."""
    return HASHLIB_NAMES.get(bank, bank)


EV_NO_ACTION = 0x3
STARTUP_LOCALITY = b"StartupLocality\x00"
SLAUNCH_START = 0x503
SLAUNCH_END = 0x504
# Intel TXT event types the appraisal and the simulator name [SDG Table E-5/E-6]
EVTYPE_PCRMAPPING = 0x401
EVTYPE_HASH_START = 0x402
EVTYPE_MLE_HASH = 0x404
EVTYPE_LCP_CONTROL_HASH = 0x40C
EVTYPE_STM_HASH = 0x40E
EVTYPE_CAP_VALUE = 0x4FF
SLAUNCH = 0x502

EVENT_TYPES: dict[int, str] = {
    # TCG PC Client PFP
    0x0: "EV_PREBOOT_CERT",
    0x1: "EV_POST_CODE",
    0x2: "EV_UNUSED",
    0x3: "EV_NO_ACTION",
    0x4: "EV_SEPARATOR",
    0x5: "EV_ACTION",
    0x6: "EV_EVENT_TAG",
    0x7: "EV_S_CRTM_CONTENTS",
    0x8: "EV_S_CRTM_VERSION",
    0x9: "EV_CPU_MICROCODE",
    0xA: "EV_PLATFORM_CONFIG_FLAGS",
    0xB: "EV_TABLE_OF_DEVICES",
    0xC: "EV_COMPACT_HASH",
    0xD: "EV_IPL",
    0xE: "EV_IPL_PARTITION_DATA",
    0xF: "EV_NONHOST_CODE",
    0x10: "EV_NONHOST_CONFIG",
    0x11: "EV_NONHOST_INFO",
    0x12: "EV_OMIT_BOOT_DEVICE_EVENTS",
    0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    0x80000002: "EV_EFI_VARIABLE_BOOT",
    0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION",
    0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
    0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    0x80000006: "EV_EFI_GPT_EVENT",
    0x80000007: "EV_EFI_ACTION",
    0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x80000009: "EV_EFI_HANDOFF_TABLES",
    0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2",
    0x8000000C: "EV_EFI_VARIABLE_BOOT2",
    0x80000010: "EV_EFI_HCRTM_EVENT",
    0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
    0x800000E1: "EV_EFI_SPDM_FIRMWARE_BLOB",
    0x800000E2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
    # Intel TXT [SDG Table E-5/E-6; Windows SDK SIPAEV_TXT_*]
    0x401: "EVTYPE_PCRMAPPING",
    0x402: "EVTYPE_HASH_START",
    0x403: "EVTYPE_COMBINED_HASH",
    0x404: "EVTYPE_MLE_HASH",
    0x40A: "EVTYPE_BIOSAC_REG_DATA",
    0x40B: "EVTYPE_CPU_SCRTM_STAT",
    0x40C: "EVTYPE_LCP_CONTROL_HASH",
    0x40D: "EVTYPE_ELEMENTS_HASH",
    0x40E: "EVTYPE_STM_HASH",
    0x40F: "EVTYPE_OSSINITDATA_CAP_HASH",
    0x410: "EVTYPE_SINIT_PUBKEY_HASH",
    0x411: "EVTYPE_LCP_HASH",
    0x412: "EVTYPE_LCP_DETAILS_HASH",
    0x413: "EVTYPE_LCP_AUTHORITIES_HASH",
    0x414: "EVTYPE_NV_INFO_HASH",
    0x415: "EVTYPE_COLD_BOOT_BIOS_HASH",
    0x416: "EVTYPE_KM_HASH",
    0x417: "EVTYPE_BPM_HASH",
    0x418: "EVTYPE_KM_INFO_HASH",
    0x419: "EVTYPE_BPM_INFO_HASH",
    0x41A: "EVTYPE_BOOT_POL_HASH",
    0x4FE: "EVTYPE_RANDOM_VALUE",
    0x4FF: "EVTYPE_CAP_VALUE",
    # tboot and Linux Secure Launch [spec §4.4]
    0x501: "TB_MEASUREMENT",
    0x502: "SLAUNCH",
    SLAUNCH_START: "SLAUNCH_START",
    SLAUNCH_END: "SLAUNCH_END",
}

# Types whose digest is the hash of their event data (strings, separators, version), so a verifier can
# check one against the other; images, variables and EV_IPL (loaders disagree on what they hash) are
# not. Loaders hash a string with or without the NUL they log, so both forms are accepted.
DATA_DIGEST_TYPES = frozenset({0x4, 0x5, 0x8, 0x80000007})


def event_type_name(etype: int) -> str:
    """The TCG name of an event type (TCG PC Client PFP §10.4.1; TXT types of SDG Tables E-5/E-6), or its hex
    value when unknown: a log may carry types newer than this table, and they must still be shown.
    """
    return EVENT_TYPES.get(etype, f"0x{etype:x}")


TXT_CONTAINER_SIGNATURE = b"TXT Event Container\x00"
SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"
