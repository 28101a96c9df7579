"""A thin ESAPI client: batched PCR reads, one multi-bank extend per event, every command bounded in time,
and every failure classified once into ``TpmError.kind`` so callers never match on message text.

ESAPI is reached through sld.tss (tpm2-pytss's compiled binding, loaded without its Python layer). The
transport is any tpm2-tss TCTI string: ``device:/dev/tpmrm0`` on a server, ``swtpm:host=,port=`` for the
simulator. ``commands`` counts the TPM commands sent, for benchmarks and the metrics.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from sld import trace
from sld.errors import TpmError
from sld.formats.names import ALG_ID, ALGORITHMS, DIGEST_SIZE
from sld.paths import DEFAULT_TCTI
from sld.tss import TCTI_RC_NOT_IMPLEMENTED, Tss2Error, binding, check, classify
from sld.vocab import TpmErrorKind

T = TypeVar("T")
LOGGER = "sld.tpm"
DEFAULT_TIMEOUT = 5.0  # seconds one TPM command may take (TPM PTP's longest, TPM2_CreatePrimary RSA, ~2 s)
PCR_SELECT_BYTES = 3  # 24 PCRs
RETRY_ATTEMPTS = 5
RETRY_FIRST_DELAY = 0.05
# [tss2_esys.h ESYS_TR; TPM 2.0 Part 2 §6.13 TPM_CAP]
ESYS_TR_NONE = 0xFFF
ESYS_TR_PASSWORD = 0x0FF
TPM2_CAP_PCRS = 0x5
LOCALITY_HINT = {
    "device": "this kernel's TPM driver is at locality 0; PCR{pcr} needs locality {need}",
    "other": "the TPM is at a locality below what PCR{pcr} needs ({need})",
}
PCR_EXTEND_LOCALITIES = {17: "2-4", 18: "2-4", 19: "2-3", 20: "1-3", 21: "2", 22: "2"}


def _release(ffi: Any, lib: Any, esys: Any, tcti: Any) -> None:
    if esys[0] != ffi.NULL:
        lib.Esys_Finalize(esys)
    if tcti[0] != ffi.NULL:
        lib.Tss2_TctiLdr_Finalize(tcti)


class _Abandoned:
    """How many overrun commands are still waiting for their TPM (each holds a thread and a connection)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def change(self, by: int) -> None:
        with self.lock:
            self.count += by


ABANDONED = _Abandoned()
MAX_ABANDONED = 4  # past this many, no new command is sent until the TPM answers one of them


def bounded(what: str, fn: Callable[[], T], timeout: float, abandon: Callable[[], Callable[[], None]]) -> T:
    """``fn()`` on a worker thread, waited for at most ``timeout`` seconds (issue 17: a TPM that stops answering).

    tpm2-tss's synchronous ESAPI calls wait without limit (they run their _Finish with an infinite timeout,
    and the swtpm/mssim TCTIs ignore timeouts altogether), so the bound is kept here. A command that overruns
    is never touched again: ``abandon()`` hands its connection's release over to the worker, which runs it
    if the TPM ever answers, and the caller gets TpmError kind "timeout". While MAX_ABANDONED of them still
    wait, a new command is refused at once rather than stacking up threads and connections for hours.
    """
    if ABANDONED.count >= MAX_ABANDONED:
        raise TpmError(TpmErrorKind.TIMEOUT, f"{what}: not sent, {ABANDONED.count} earlier TPM commands are still "
                       "without an answer")
    outcome: list[tuple[bool, Any]] = []
    leftover: list[Callable[[], None]] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as err:  # handed to the caller, whatever it is
            outcome.append((False, err))
        with lock:
            for release in leftover:
                release()
                ABANDONED.change(-1)

    worker = threading.Thread(target=work, name="sld-tpm-command", daemon=True)
    worker.start()
    worker.join(timeout)
    with lock:
        if not outcome:
            leftover.append(abandon())
            ABANDONED.change(+1)
            raise TpmError(TpmErrorKind.TIMEOUT,
                           f"{what}: no answer within {timeout:g} s (the connection is abandoned)")
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


class Tpm:
    """An open TPM; ``banks`` is read once (TPM2_GetCapability PCRS) and cached for the session.

    Every command waits at most ``timeout`` seconds; one that overruns closes this Tpm (TpmError "timeout"),
    and a caller that wants to go on opens a new one (the daemon does, next interval).
    """

    def __init__(self, tcti: str = DEFAULT_TCTI, *, locality: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.tcti_string = tcti
        self.opened_as = (tcti, locality)
        self.timeout = timeout
        self.commands = 0
        self._banks: tuple[str, ...] | None = None
        self._ffi, self._lib = binding()
        self._tcti: Any = self._ffi.new("TSS2_TCTI_CONTEXT **")
        self._esys: Any = self._ffi.new("ESYS_CONTEXT **")
        # Released in order (ESAPI, then the TCTI) by close(), or when the Tpm is collected.
        self._release = weakref.finalize(self, _release, self._ffi, self._lib, self._esys, self._tcti)
        try:
            self._bounded("open", self._open)
        except Tss2Error as err:
            self.close()
            raise TpmError(TpmErrorKind.UNAVAILABLE, f"cannot open TCTI {tcti!r}: {err}") from None
        if locality is not None:
            self.set_locality(locality)

    def _open(self) -> None:
        """Tss2_TctiLdr_Initialize (the swtpm TCTI talks to swtpm already) and Esys_Initialize."""
        check(self._lib.Tss2_TctiLdr_Initialize(self.tcti_string.encode(), self._tcti))
        check(self._lib.Esys_Initialize(self._esys, self._tcti[0], self._ffi.NULL))

    def _require_open(self, what: str) -> None:
        if not self._release.alive:
            raise TpmError(TpmErrorKind.UNAVAILABLE, f"{what}: the TPM connection is closed")

    def _abandon(self) -> Callable[[], None]:
        """Close this Tpm without touching its contexts; the release (run later by the worker) is returned."""
        detached = self._release.detach()
        if detached is None:
            return lambda: None
        _, release, args, _ = detached
        return lambda: release(*args)

    def _bounded(self, what: str, fn: Callable[[], T], timeout: float | None = None) -> T:
        return bounded(f"{what} via {self.tcti_string}", fn, timeout or self.timeout, self._abandon)

    def set_locality(self, locality: int) -> None:
        """Tss2_Tcti_SetLocality: the swtpm and mssim TCTIs support it; the kernel device does not."""
        what = f"TCTI {self.tcti_string!r}"
        self._require_open(what)
        common = self._ffi.cast("TSS2_TCTI_CONTEXT_COMMON_V1 *", self._tcti[0])
        try:
            if common.setLocality == self._ffi.NULL:
                raise Tss2Error(TCTI_RC_NOT_IMPLEMENTED, "tcti:not implemented")
            self._bounded(f"{what} set locality", lambda: check(common.setLocality(self._tcti[0], locality)))
        except Tss2Error as err:
            raise TpmError(TpmErrorKind.LOCALITY, f"{what} cannot select locality {locality}: {err}",
                           rc=err.rc) from None

    def close(self) -> None:
        """Release the ESAPI and TCTI contexts, once and in that order (closing twice is harmless)."""
        self._release()

    def __enter__(self) -> Tpm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], T], timeout: float | None = None) -> T:
        """One TPM command, bounded in time, retried with bounded exponential backoff while the TPM asks to retry.

        ESAPI itself resubmits RETRY/YIELDED/TESTING answers up to 5 times without pausing; these rounds
        add the pause a self-testing TPM needs, so at most RETRY_ATTEMPTS x 5 commands are sent.
        """
        self._require_open(what)
        delay = RETRY_FIRST_DELAY
        for attempt in range(RETRY_ATTEMPTS):
            self.commands += 1
            trace.debug(LOGGER, "%s via %s (attempt %d)", what, self.tcti_string, attempt + 1)
            try:
                return self._bounded(what, fn, timeout)
            except (Tss2Error, OSError) as err:
                classified = classify(err, what)
                if classified.kind != TpmErrorKind.RETRY or attempt == RETRY_ATTEMPTS - 1:
                    raise classified from None
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def esys(self, what: str, call: Callable[[Any], int], timeout: float | None = None) -> None:
        """One ESAPI command, ``call(ESYS_CONTEXT *)`` returning its TSS2_RC: bounded (``timeout``, default the
        session's), retried and classified as every command of this session is (sld.ak's commands)."""
        self._call(what, lambda: check(call(self._esys[0])), timeout)

    def esys_local(self, call: Callable[[Any], int]) -> None:
        """An ESAPI call that sends nothing to the TPM (Esys_TR_Close of a persistent object's record)."""
        self._require_open("ESAPI")
        check(call(self._esys[0]))

    def banks(self) -> tuple[str, ...]:
        """Active PCR banks: those with any PCR allocated (TPM2_GetCapability, TPM_CAP_PCRS)."""
        if self._banks is None:
            self._banks = self._call("TPM2_GetCapability(PCRS)", self._get_banks)
        return self._banks

    def _get_banks(self) -> tuple[str, ...]:
        ffi, lib = self._ffi, self._lib
        more, data = ffi.new("TPMI_YES_NO *"), ffi.new("TPMS_CAPABILITY_DATA **")
        check(lib.Esys_GetCapability(self._esys[0], ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_PCRS,
                                           0, 1, more, data))
        try:
            assigned = data[0].data.assignedPCR
            return tuple(ALGORITHMS[s.hash][0] for s in assigned.pcrSelections[0 : assigned.count]
                         if s.hash in ALGORITHMS and any(ffi.buffer(s.pcrSelect, s.sizeofSelect)[:]))
        finally:
            lib.Esys_Free(data[0])

    def read_pcrs(self, pcrs: Iterable[int], banks: Iterable[str]) -> dict[str, dict[int, bytes]]:
        """TPM2_PCR_Read, looped on the returned selection: a TPM returns at most 8 digests per command."""
        want = {bank: set(pcrs) for bank in banks}
        out: dict[str, dict[int, bytes]] = {bank: {} for bank in want}
        while any(want.values()):
            got = self._call("TPM2_PCR_Read", lambda: self._pcr_read(want))
            for bank, pcr, value in got:
                out[bank][pcr] = value
                want[bank].discard(pcr)
            if not got:
                missing = {b: sorted(p) for b, p in want.items() if p}
                raise TpmError(TpmErrorKind.COMMAND,
                               f"TPM2_PCR_Read returned nothing for {missing} (bank not allocated?)")
        return out

    def _pcr_read(self, want: Mapping[str, set[int]]) -> list[tuple[str, int, bytes]]:
        """One TPM2_PCR_Read of the selection ``want``: (bank, pcr, value) in the order the TPM returned them."""
        ffi, lib = self._ffi, self._lib
        selection = ffi.new("TPML_PCR_SELECTION *")
        for bank, wanted in want.items():
            if wanted:
                sel = selection.pcrSelections[selection.count]
                sel.hash, sel.sizeofSelect = ALG_ID[bank], PCR_SELECT_BYTES
                for pcr in wanted:
                    sel.pcrSelect[pcr // 8] |= 1 << (pcr % 8)
                selection.count += 1
        counter, got, values = ffi.new("UINT32 *"), ffi.new("TPML_PCR_SELECTION **"), ffi.new("TPML_DIGEST **")
        check(lib.Esys_PCR_Read(self._esys[0], ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, selection, counter,
                                      got, values))
        try:
            digests = iter(values[0].digests[0 : values[0].count])
            out = []
            for sel in got[0].pcrSelections[0 : got[0].count]:
                bits = ffi.buffer(sel.pcrSelect, sel.sizeofSelect)[:]
                for pcr in range(len(bits) * 8):
                    if bits[pcr // 8] >> (pcr % 8) & 1:
                        digest = next(digests)
                        out.append((ALGORITHMS[sel.hash][0], pcr, ffi.buffer(digest.buffer, digest.size)[:]))
            return out
        finally:
            lib.Esys_Free(got[0])
            lib.Esys_Free(values[0])

    def extend(self, pcr: int, digests: Mapping[str, bytes]) -> None:
        """TPM2_PCR_Extend with every bank's digest in one command (atomic across banks)."""
        ffi = self._ffi
        values = ffi.new("TPML_DIGEST_VALUES *")
        if len(digests) > len(values.digests) or any(len(d) != DIGEST_SIZE.get(b) for b, d in digests.items()):
            raise TpmError(TpmErrorKind.COMMAND, f"TPM2_PCR_Extend(PCR{pcr}): digests that no TPM bank takes: "
                           + ", ".join(f"{b} ({len(d)} bytes)" for b, d in digests.items()))
        values.count = len(digests)
        for i, (bank, digest) in enumerate(digests.items()):
            values.digests[i].hashAlg = ALG_ID[bank]
            ffi.memmove(ffi.addressof(values.digests[i].digest), digest, len(digest))
        try:
            self._call(f"TPM2_PCR_Extend(PCR{pcr})", lambda: check(self._lib.Esys_PCR_Extend(
                self._esys[0], pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, values)))
        except TpmError as err:
            if err.kind == TpmErrorKind.LOCALITY:
                hint = LOCALITY_HINT["device" if self.tcti_string.startswith("device") else "other"]
                need = PCR_EXTEND_LOCALITIES.get(pcr, "0-4")
                raise TpmError(TpmErrorKind.LOCALITY, hint.format(pcr=pcr, need=need), rc=err.rc) from None
            raise
