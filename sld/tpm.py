"""A thin tpm2-pytss (ESAPI) wrapper: batched PCR reads, one multi-bank extend per event, and every
failure classified once into ``TpmError.kind`` so callers never match on message text.

The transport is any tpm2-tss TCTI string: ``device:/dev/tpmrm0`` on a server, ``swtpm:host=,port=``
for the simulator. ``commands`` counts the TPM commands sent, for benchmarks and the metrics.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from sld.errors import TpmError
from sld.formats.eventlog import ALG_ID, ALGORITHMS

os.environ.setdefault("TSS2_LOG", "all+NONE")  # errors are ours to report, not esys's stderr chatter

from tpm2_pytss import ESAPI, TCTILdr, TSS2_Exception  # noqa: E402
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_CAP, TPM2_RC  # noqa: E402
from tpm2_pytss.types import (  # noqa: E402
    TPML_DIGEST_VALUES,
    TPML_PCR_SELECTION,
    TPMS_PCR_SELECTION,
    TPMT_HA,
    TPMU_HA,
)

T = TypeVar("T")
log = logging.getLogger("sld.tpm")
DEFAULT_TCTI = "device:/dev/tpmrm0"
PCR_SELECT_BYTES = 3  # 24 PCRs
RETRY_ATTEMPTS = 5
RETRY_FIRST_DELAY = 0.05
RETRIABLE = {int(TPM2_RC.RETRY), int(TPM2_RC.YIELDED), int(TPM2_RC.TESTING)}
LOCALITY_HINT = {
    "device": "this kernel's TPM driver is at locality 0; PCR{pcr} needs locality {need}",
    "other": "the TPM is at a locality below what PCR{pcr} needs ({need})",
}
PCR_EXTEND_LOCALITIES = {17: "2-4", 18: "2-4", 19: "2-3", 20: "1-3", 21: "2", 22: "2"}


def classify(err: Exception, what: str) -> TpmError:
    """TSS2 and transport failures -> TpmError(kind): locality, retry, unavailable, command."""
    if isinstance(err, TSS2_Exception):
        rc = int(err.rc)
        layer = rc & 0xFF0000
        code = int(err.error)
        if layer == 0 and code == int(TPM2_RC.LOCALITY):
            return TpmError("locality", f"{what}: TPM_RC_LOCALITY", rc=rc)
        if layer == 0 and code in RETRIABLE:
            return TpmError("retry", f"{what}: the TPM kept answering {TPM2_RC(code)!s} (retry, yielded, testing)",
                            rc=rc)
        if layer in (0xA0000, 0x70000, 0x80000, 0x60000):  # TCTI, ESAPI, SYS, MU: transport side
            return TpmError("unavailable", f"{what}: {err}", rc=rc)
        return TpmError("command", f"{what}: {err}", rc=rc)
    return TpmError("unavailable", f"{what}: {err}")


class Tpm:
    """An open TPM; ``banks`` is read once (TPM2_GetCapability PCRS) and cached for the session."""

    def __init__(self, tcti: str = DEFAULT_TCTI, *, locality: int | None = None) -> None:
        self.tcti_string = tcti
        self.commands = 0
        self._banks: tuple[str, ...] | None = None
        try:
            self._tcti = TCTILdr.parse(tcti)
            self._esys = ESAPI(self._tcti)
        except (TSS2_Exception, RuntimeError, OSError, ValueError) as err:
            raise TpmError("unavailable", f"cannot open TCTI {tcti!r}: {err}") from None
        if locality is not None:
            self.set_locality(locality)

    def set_locality(self, locality: int) -> None:
        """Tss2_Tcti_SetLocality: the swtpm and mssim TCTIs support it; the kernel device does not."""
        try:
            self._tcti.set_locality(locality)
        except TSS2_Exception as err:
            raise TpmError("locality", f"TCTI {self.tcti_string!r} cannot select locality {locality}: {err}",
                           rc=int(err.rc)) from None

    def close(self) -> None:
        esys = getattr(self, "_esys", None)
        if esys is not None:
            esys.close()
            self._esys = None

    def __enter__(self) -> Tpm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One TPM command, retried with bounded exponential backoff while the TPM asks to retry.

        ESAPI itself resubmits RETRY/YIELDED/TESTING answers up to 5 times without pausing; these rounds
        add the pause a self-testing TPM needs, so at most RETRY_ATTEMPTS x 5 commands are sent.
        """
        delay = RETRY_FIRST_DELAY
        for attempt in range(RETRY_ATTEMPTS):
            self.commands += 1
            log.debug("%s via %s (attempt %d)", what, self.tcti_string, attempt + 1)
            try:
                return fn()
            except (TSS2_Exception, OSError) as err:
                classified = classify(err, what)
                if classified.kind != "retry" or attempt == RETRY_ATTEMPTS - 1:
                    raise classified from None
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def banks(self) -> tuple[str, ...]:
        """Active PCR banks: those with any PCR allocated (TPM2_GetCapability, TPM_CAP_PCRS)."""
        if self._banks is None:
            _, data = self._call("TPM2_GetCapability(PCRS)", lambda: self._esys.get_capability(TPM2_CAP.PCRS, 0, 1))
            self._banks = tuple(ALGORITHMS[int(s.hash)][0] for s in data.data.assignedPCR
                                if int(s.hash) in ALGORITHMS and any(s.pcrSelect[0 : s.sizeofSelect]))
        return self._banks

    def read_pcrs(self, pcrs: Iterable[int], banks: Iterable[str]) -> dict[str, dict[int, bytes]]:
        """TPM2_PCR_Read, looped on the returned selection: a TPM returns at most 8 digests per command."""
        want = {bank: set(pcrs) for bank in banks}
        out: dict[str, dict[int, bytes]] = {bank: {} for bank in want}
        while any(want.values()):
            selection = _selection(want)
            _, got, digests = self._call("TPM2_PCR_Read", lambda sel=selection: self._esys.pcr_read(sel))
            values = iter(digests)
            returned = 0
            for sel in got:
                bank = ALGORITHMS[int(sel.hash)][0]
                bits = bytes(sel.pcrSelect[0 : sel.sizeofSelect])
                for pcr in range(len(bits) * 8):
                    if bits[pcr // 8] >> (pcr % 8) & 1:
                        out[bank][pcr] = bytes(next(values))
                        want[bank].discard(pcr)
                        returned += 1
            if returned == 0:
                missing = {b: sorted(p) for b, p in want.items() if p}
                raise TpmError("command", f"TPM2_PCR_Read returned nothing for {missing} (bank not allocated?)")
        return out

    def extend(self, pcr: int, digests: Mapping[str, bytes]) -> None:
        """TPM2_PCR_Extend with every bank's digest in one command (atomic across banks)."""
        values = TPML_DIGEST_VALUES([_digest(bank, d) for bank, d in digests.items()])
        handle = ESYS_TR.parse(f"pcr{pcr}")
        try:
            self._call(f"TPM2_PCR_Extend(PCR{pcr})", lambda: self._esys.pcr_extend(handle, values))
        except TpmError as err:
            if err.kind == "locality":
                hint = LOCALITY_HINT["device" if self.tcti_string.startswith("device") else "other"]
                need = PCR_EXTEND_LOCALITIES.get(pcr, "0-4")
                raise TpmError("locality", hint.format(pcr=pcr, need=need), rc=err.rc) from None
            raise


def _selection(want: Mapping[str, set[int]]) -> TPML_PCR_SELECTION:
    sels = []
    for bank, pcrs in want.items():
        if not pcrs:
            continue
        bits = bytearray(PCR_SELECT_BYTES)
        for pcr in pcrs:
            bits[pcr // 8] |= 1 << (pcr % 8)
        sel = TPMS_PCR_SELECTION(hash=TPM2_ALG(ALG_ID[bank]), sizeofSelect=PCR_SELECT_BYTES)
        for i, b in enumerate(bits):
            sel.pcrSelect[i] = b
        sels.append(sel)
    return TPML_PCR_SELECTION(sels)


def _digest(bank: str, value: bytes) -> TPMT_HA:
    field: dict[str, Any] = {bank if bank != "sm3_256" else "sm3_256": value}
    return TPMT_HA(hashAlg=TPM2_ALG(ALG_ID[bank]), digest=TPMU_HA(**field))
