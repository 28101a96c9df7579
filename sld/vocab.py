"""The one vocabulary of sld: every word a verdict, a metric label, a journal field or a configuration
choice can hold, as a StrEnum.

A StrEnum member *is* its string (``CheckStatus.PASS == "pass"``, ``json.dumps`` and f-strings give the
value), so JSON schema 1, Prometheus labels and journal fields keep their spelling while the code
names each word once. Configuration choices (``[verify] mode``, ``[quarantine] on``) are derived from
these lists, never re-typed. Ground floor: imports nothing of sld.
"""

from __future__ import annotations

from enum import StrEnum


class CheckId(StrEnum):
    """Ids of the facts a verdict is made of (the catalogue in :mod:`sld.checks` describes each)."""

    TXT_REGISTERS = "txt.registers"
    TXT_LAUNCHED = "txt.launched"
    TXT_ERRORCODE = "txt.errorcode"
    TXT_RESET = "txt.reset"
    HEAP_VALID = "heap.valid"
    SLRT_VALID = "slrt.valid"
    LOG_VALID = "log.valid"
    LOG_DIGESTS = "log.digests"
    TPM_LAUNCHED = "tpm.launched"
    TPM_EXTEND = "tpm.extend"
    POLICY_MATCH = "policy.match"
    PCR_MATCH = "pcr.match"
    # remote verification of an evidence file (sld verify --evidence), in the order they are checked
    EVIDENCE_SIGNATURE = "evidence.signature"
    EVIDENCE_AK = "evidence.ak"
    EVIDENCE_MAGIC = "evidence.magic"
    EVIDENCE_TYPE = "evidence.type"
    EVIDENCE_NONCE = "evidence.nonce"
    EVIDENCE_SELECTION = "evidence.selection"
    EVIDENCE_DIGEST = "evidence.digest"
    EVIDENCE_BANKS = "evidence.banks"
    EVIDENCE_REPLAY = "evidence.replay"
    EVIDENCE_FRESHNESS = "evidence.freshness"
    TXT_PREVIOUS_ERROR = "txt.previous-error"
    POSTURE_LCP = "posture.lcp"
    POSTURE_STM = "posture.stm"
    SINIT_POLICY = "sinit.policy"
    SINIT_DOWNGRADE = "sinit.downgrade"
    PCR_CAPPED = "pcr.capped"
    PCR_BANKS = "pcr.banks"


class CheckStatus(StrEnum):
    """The outcome of one check. ``warn`` is a failed check whose severity is only a warning."""

    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"


class Severity(StrEnum):
    """What a failed check does to the verdict: ``fail`` fails it, ``warn`` is reported and counted only."""

    FAIL = "fail"
    WARN = "warn"


class Result(StrEnum):
    """The verdict. ``not-launched`` is never reported as a mismatch: there was nothing to measure."""

    VERIFIED = "verified"
    FAILED = "failed"
    NOT_LAUNCHED = "not-launched"

    @property
    def exit_code(self) -> int:
        """What ``sld verify`` exits with for this verdict (0, 1 or 3; see the exit-code table in sld(8))."""
        return {"verified": 0, "failed": 1, "not-launched": 3}[self.value]


class PcrStatus(StrEnum):
    """Where one DRTM PCR stands against its logged events (:func:`sld.verify.compare`)."""

    MATCH = "match"
    RESUMABLE = "resumable"  # a prefix inside the Secure Launch window is held: the rest can be extended
    MISMATCH = "mismatch"
    NOT_LAUNCHED = "not-launched"  # all-ones: no dynamic launch reset it
    NOT_MEASURED = "not-measured"  # (per bank) capped: 0x01-then-zeros digests or CAP_VALUE events, never a match
    NOT_COVERED = "not-covered"  # (per bank) allocated in the TPM but absent from the log: nothing to verify it by


class DaemonState(StrEnum):
    """The service's state (``sld status``, ``sld_daemon_state``, STATUS= to systemd)."""

    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    FAILED = "failed"
    STOPPING = "stopping"


class TpmErrorKind(StrEnum):
    """How a TPM failure is classified once (``TpmError.kind``), so callers never match message text."""

    LOCALITY = "locality"
    RETRY = "retry"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"  # no answer within [tpm] timeout: the session is abandoned (sld.tpm.bounded)
    COMMAND = "command"


class Mode(StrEnum):
    """``sld verify --mode``: validate never extends; auto and perform extend deferred events exactly once."""

    AUTO = "auto"
    VALIDATE = "validate"
    PERFORM = "perform"


class LogFormat(StrEnum):
    """The three DRTM event-log formats (TXT SDG App. G; TCG PC Client PFP §10)."""

    TPM12_CONTAINER = "tpm12-container"
    TCG_SHA1 = "tcg-sha1"
    CRYPTO_AGILE = "crypto-agile"


class SourceKind(StrEnum):
    """Where platform bytes were read from (``--source``)."""

    SECURITYFS = "securityfs"
    DEVMEM = "devmem"
    IMAGE = "image"
    CAPTURE = "capture"  # an `sld capture` file with memory regions (one of securityfs files alone: securityfs)


class EarStatus(StrEnum):
    """``ear_status`` of an EAT Attestation Result (draft-ietf-rats-ear-04 §3; AR4SI trust tiers)."""

    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"


class JournalEvent(StrEnum):
    """Kinds of journal record other than a verdict (a verdict's record is keyed by its :class:`Result`):
    each has one MESSAGE_ID in :mod:`sld.service.journal`, explained in ``conf/sld.catalog``."""

    EXTENDED = "extended"
    PCR_CHANGED = "pcr-changed"
    TPM_ERROR = "tpm-error"
    CONFIG_RELOADED = "config-reloaded"
    QUARANTINE = "quarantine"
    VERIFICATION_STUCK = "verification-stuck"
    OUTPUT_ERROR = "output-error"


class LogCategory(StrEnum):
    """``[log] debug`` categories: each turns on debug records of one logger (``sld.<category>``)."""

    SOURCES = "sources"
    TPM = "tpm"
    REPLAY = "replay"
    METRICS = "metrics"
    NET = "net"
    CONTROL = "control"


def choices(vocabulary: type[StrEnum]) -> tuple[str, ...]:
    """The values of a vocabulary, in declaration order (argparse ``choices``, configuration checks)."""
    return tuple(member.value for member in vocabulary)
