"""Named scenarios of the simulated platform: what a launch put in memory and in the TPM.

A scenario is data: a ``PlatformSpec`` (the knobs the image builder and the swtpm launch emulation
read) plus the verdict sld must reach on it. The builder never special-cases a scenario name.
"""

from __future__ import annotations

import hashlib
from dataclasses import field

from sld.errors import ConfigError
from sld.formats.acm import build_acm
from sld.formats.names import EVTYPE_HASH_START, EVTYPE_LCP_CONTROL_HASH, EVTYPE_MLE_HASH, EVTYPE_STM_HASH, SLAUNCH
from sld.records import Record
from sld.vocab import CheckId, Result

LAYOUTS = ("v7", "v9", "v10", "v12", "v16")
"""Secure Launch structure generations, named by their first patch version (docs/design.md)."""

SL_ERRORCODE_TPM_EXTEND = 0xC0008006
SINIT_SUCCESS = 0xC0000001


class SimEvent(Record):
    """One log record as the simulator writes it; ``window`` marks the Secure Launch events."""

    pcr: int
    type: int
    data: bytes
    digests: dict[str, bytes]
    window: bool = False


def measure(data: bytes, banks: tuple[str, ...]) -> dict[str, bytes]:
    """H(data) in every bank: how the ACM and the kernel measure."""
    return {bank: hashlib.new(bank, data).digest() for bank in banks}


class PlatformSpec(Record):
    """Everything the builder needs; scenarios override a few fields of the clean launch."""

    log_format: str = "tpm20"  # tpm20 (crypto-agile) or tpm12 (TXT event container)
    banks: tuple[str, ...] = ("sha1", "sha256")
    launched: bool = True  # False: registers like the tboot-devel false positives, heap at 0
    errorcode: int = SINIT_SUCCESS
    window_events: int = 5  # Secure Launch (0x502) events between SLAUNCH_START and SLAUNCH_END
    window_extended: int | None = None  # how many window events the kernel extended; None = all
    layout: str = "v16"  # the default structure generation; deferred extends need v7-v14 (markers)
    tamper_event: int | None = None  # index of an event whose data and digest are altered after extend
    slrt_magic: int = 0x4452544D
    log_info: bool = True
    truncate_log_at: int | None = None  # cut the log buffer after this many bytes past the header
    seed: bytes = b"sld-sim"
    # What was launched, for appraisal scenarios (SDG A.1, App. E; spec §6):
    sinit_svn: int = 5  # the SINIT ACM header's TxtSvn (and SeSvn = svn - 4)
    sinit_date: int = 0x20260315  # its BCD date
    kernel: bytes = b"mle-kernel"  # what MLE_HASH measures
    cmdline: bytes = b"ro console=ttyS0,115200 slaunch"  # what the "Measured Kernel command line" event measures
    lcp: bool = True  # False: LCP_CONTROL_HASH of a zero u32 (no launch control policy)
    stm: bool = True  # False: STM_HASH of a zero byte (no STM)
    capped_banks: tuple[str, ...] = ()  # banks the kernel could not hash: its events log 0x01 then zeros (v12-v14)
    # ERRORCODE left by an earlier boot: it survives a warm reset (spec §1.2 ERRORCODE: "a soft reset does not
    # clear it") and a SINIT that succeeds need not overwrite it ("0 or 0xC0000001" after a good launch, §1.4)
    previous_errorcode: int | None = None
    tpm_banks: tuple[str, ...] | None = None  # the banks the TPM allocates; None: exactly the log's (``banks``)

    @property
    def allocated(self) -> tuple[str, ...]:
        """The PCR banks ``sld sim up`` activates in the swtpm (TPM2_PCR_Allocate, through swtpm_setup)."""
        return self.banks if self.tpm_banks is None else self.tpm_banks


class Appraisal(Record):
    """What ``sld verify --policy`` says with a policy created on ``clean``: the verdict and the part it names."""

    verdict: Result
    part: str | None = None  # the failing part the verdict must name
    warning: CheckId | None = None  # a warn-severity check the verdict must carry (with or without the policy)


class Scenario(Record):
    """A named platform and the verdicts sld must reach on it, with and without clean's policy."""

    name: str
    description: str
    verdict: Result
    spec: PlatformSpec = field(default_factory=PlatformSpec)
    appraisal: Appraisal | None = None  # None: the same verdict as without a policy

    @property
    def exit_code(self) -> int:
        """What ``sld verify`` exits with on this platform (without a policy)."""
        return self.verdict.exit_code

    def with_clean_policy(self) -> dict[str, str | None]:
        """The verdict ``sld verify --policy`` reaches with a policy created on ``clean``, and what it names."""
        a = self.appraisal
        return {"verdict": a.verdict if a else self.verdict, "part": a.part if a else None,
                "warning": a.warning if a else None}


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("clean", "TPM 2.0 launch: SINIT events, Secure Launch events between START/END, all extended",
             Result.VERIFIED),
    Scenario("clean-tpm12", "the same launch with a TPM 1.2 TXT event container (SHA-1 only)",
             Result.VERIFIED, PlatformSpec(log_format="tpm12", banks=("sha1",))),
    Scenario("clean-sha384", "TPM 2.0 launch logging sha1, sha256 and sha384 banks",
             Result.VERIFIED, PlatformSpec(banks=("sha1", "sha256", "sha384")),
             Appraisal(Result.FAILED, "sinit")),  # clean's policy lists no sha384: every part fails, sinit first
    Scenario("not-launched", "TXT present but no launch: SENTER.DONE and SEXIT.DONE set, heap 0",
             Result.NOT_LAUNCHED, PlatformSpec(launched=False, errorcode=0)),
    Scenario("txt-error", "the kernel reset with SL_ERROR_TPM_EXTEND in ERRORCODE",
             Result.FAILED, PlatformSpec(errorcode=SL_ERRORCODE_TPM_EXTEND)),
    Scenario("tampered-log", "one Secure Launch event's data and digest changed after it was extended",
             Result.FAILED, PlatformSpec(tamper_event=-2)),
    Scenario("slrt-bad-magic", "OsMleData points at a table whose magic is not MTRD",
             Result.FAILED, PlatformSpec(slrt_magic=0x4D545244)),
    Scenario("slrt-no-log-info", "the SLRT lacks its LOG_INFO entry",
             Result.FAILED, PlatformSpec(log_info=False)),
    Scenario("truncated-log", "the event log buffer ends in the middle of a record",
             Result.FAILED, PlatformSpec(truncate_log_at=300)),
    Scenario("unextended", "the kernel logged the Secure Launch events but extended none (perform mode)",
             Result.VERIFIED, PlatformSpec(window_extended=0, layout="v12")),
    Scenario("partial-extend", "a crash after 3 of the 20 Secure Launch extends (perform mode resumes)",
             Result.VERIFIED, PlatformSpec(window_events=20, window_extended=3, layout="v12"),
             Appraisal(Result.FAILED)),  # 15 setup_data events clean's policy does not know
    # Self-consistent launches of something the golden host did not launch: only a policy tells.
    Scenario("wrong-kernel", "a consistent launch of a kernel the policy does not list (MLE_HASH)",
             Result.VERIFIED, PlatformSpec(kernel=b"mle-kernel-unapproved"), Appraisal(Result.FAILED, "mle")),
    Scenario("changed-cmdline", "a consistent launch with another kernel command line",
             Result.VERIFIED, PlatformSpec(cmdline=b"ro console=ttyS0,115200 slaunch init=/bin/sh"),
             Appraisal(Result.FAILED, "cmdline")),
    Scenario("downgraded-sinit", "a consistent launch by an older SINIT ACM (TxtSvn 3, 2024) than clean's (5)",
             Result.VERIFIED, PlatformSpec(sinit_svn=3, sinit_date=0x20240110), Appraisal(Result.FAILED, "sinit")),
    Scenario("no-lcp", "no launch control policy: LCP_CONTROL_HASH is the hash of a zero u32",
             Result.VERIFIED, PlatformSpec(lcp=False), Appraisal(Result.FAILED, "lcp-control", CheckId.POSTURE_LCP)),
    Scenario("no-stm", "no SMI transfer monitor: STM_HASH is the hash of a zero byte",
             Result.VERIFIED, PlatformSpec(stm=False), Appraisal(Result.FAILED, "stm", CheckId.POSTURE_STM)),
    Scenario("capped-bank", "a v12 kernel that could not hash sha256 capped it (0x01 then zeros) in its events",
             Result.VERIFIED, PlatformSpec(capped_banks=("sha256",), layout="v12"),
             Appraisal(Result.FAILED, "initrd", CheckId.PCR_CAPPED)),
    Scenario("previous-boot-error", "this boot launched cleanly; ERRORCODE still holds the last boot's "
             "SL_ERROR_TPM_EXTEND", Result.VERIFIED, PlatformSpec(previous_errorcode=SL_ERRORCODE_TPM_EXTEND),
             Appraisal(Result.VERIFIED, None, CheckId.TXT_PREVIOUS_ERROR)),
    Scenario("uncovered-bank", "the clean launch on a TPM that also allocates sha384, which the log (sha1, sha256) "
             "does not cover (pcr.banks)", Result.FAILED, PlatformSpec(tpm_banks=("sha1", "sha256", "sha384"))),
)


def scenario(name: str) -> Scenario:
    """The scenario called ``name``; an unknown name is a ConfigError (exit 2)."""
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise ConfigError(f"unknown scenario {name!r}; `sld sim list` shows them", key="scenario")


WINDOW_ENTITIES = (
    (18, b"Measured SLR Table"),
    (18, b"Measured boot parameters"),
    (18, b"Measured Kernel command line"),
    (18, b"Measured EFI memory map"),
    (17, b"Measured Kernel initrd"),
)


def sinit_image(spec: PlatformSpec) -> bytes:
    """The SINIT ACM the loader put at SINIT.BASE: its header (SDG A.1) and a body unique to its version."""
    body = spec.seed + b"sinit-acm-body-svn%d" % spec.sinit_svn
    header = build_acm(txt_svn=spec.sinit_svn, se_svn=max(spec.sinit_svn - 4, 0), date=spec.sinit_date,
                       size=0x80 + len(body))
    return header + body


def sinit_hash(spec: PlatformSpec) -> bytes:
    """The SINIT's SHA-1 as SinitMleData and HASH_START carry it."""
    return hashlib.sha1(sinit_image(spec)).digest()


def sinit_events(spec: PlatformSpec) -> list[SimEvent]:
    """The ACM's measurements (SDG App. E, D/A mapping): HASH_START first, as the DRTM sequence starts."""
    banks = spec.banks
    hash_start = sinit_hash(spec) + b"\x00\x00\x00\x00" * 4
    rows = [
        (0xFF, 0x401, (1).to_bytes(4, "little")),
        (17, EVTYPE_HASH_START, hash_start),
        (17, 0x40A, spec.seed + b"bios-acm-registers"),
        (17, 0x40B, b"\x01\x00\x00\x00"),
        (17, EVTYPE_LCP_CONTROL_HASH, spec.seed + b"lcp-policy-control" if spec.lcp else bytes(4)),
        (17, EVTYPE_STM_HASH, spec.seed + b"stm-image" if spec.stm else bytes(1)),
        (17, 0x40F, (0x227).to_bytes(4, "little")),
        (17, EVTYPE_MLE_HASH, b""),
        (18, 0x410, spec.seed + b"sinit-public-key"),
        (18, 0x40B, b"\x01\x00\x00\x00"),
        (18, 0x412, spec.seed + b"lcp-details"),
    ]
    events = []
    for pcr, etype, data in rows:
        # MLE_HASH carries no data: its digest is the kernel image's hash.
        mle = etype == EVTYPE_MLE_HASH
        measured = spec.seed + spec.kernel if mle else data
        events.append(SimEvent(pcr, etype, b"" if mle else data, measure(measured, banks)))
    return events


def window_events(spec: PlatformSpec, layout: str) -> list[SimEvent]:
    """The Secure Launch stub's events, bracketed by markers in v7-v14 (spec §4.4, §7.5)."""
    banks = spec.banks
    body = []
    for i in range(spec.window_events):
        pcr, info = WINDOW_ENTITIES[i % len(WINDOW_ENTITIES)]
        if i >= len(WINDOW_ENTITIES):
            info = b"Measured Kernel setup_data %d" % i
        measured = spec.cmdline if info == b"Measured Kernel command line" else spec.seed + b"entity-%d" % i
        digests = {b: b"\x01" + bytes(len(d) - 1) if b in spec.capped_banks else d
                   for b, d in measure(measured, banks).items()}
        body.append(SimEvent(pcr, SLAUNCH, info, digests, window=True))
    if layout == "v16":
        return body
    if spec.log_format == "tpm12" or layout in ("v7", "v9"):
        marker = {bank: bytes(hashlib.new(bank).digest_size) for bank in banks}
    else:
        marker = measure(b"", banks)
    return [SimEvent(17, 0x503, b"", marker), *body, SimEvent(17, 0x504, b"", marker)]


def events_for(spec: PlatformSpec, layout: str) -> list[SimEvent]:
    """The whole launch's log records, in the order the ACM and then the kernel write them."""
    return sinit_events(spec) + window_events(spec, layout)

