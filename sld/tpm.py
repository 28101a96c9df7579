"""A thin ESAPI client: batched PCR reads, one multi-bank extend per event, and every failure
classified once into ``TpmError.kind`` so callers never match on message text.

The ESAPI calls go through tpm2-pytss's own cffi binding to libtss2 (its compiled ``_libtpm2_pytss``
module), loaded without the package's Python layer: that layer imports cryptography and FAPI, 50 ms
(more than a whole verification) that sld's five ESAPI calls do not need. The transport is any
tpm2-tss TCTI string: ``device:/dev/tpmrm0`` on a server, ``swtpm:host=,port=`` for the simulator.
``commands`` counts the TPM commands sent, for benchmarks and the metrics.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from sld.errors import TpmError
from sld.formats.names import ALG_ID, ALGORITHMS, DIGEST_SIZE
from sld.paths import DEFAULT_TCTI
from sld.vocab import TpmErrorKind

T = TypeVar("T")
log = logging.getLogger("sld.tpm")
PCR_SELECT_BYTES = 3  # 24 PCRs
RETRY_ATTEMPTS = 5
RETRY_FIRST_DELAY = 0.05
# [TPM 2.0 Part 2, TPM_RC; tss2_esys.h ESYS_TR]
RC_LOCALITY = 0x907
RETRIABLE = {0x922: "TPM_RC_RETRY", 0x908: "TPM_RC_YIELDED", 0x90A: "TPM_RC_TESTING"}
TRANSPORT_LAYERS = (0xA0000, 0x70000, 0x80000, 0x90000)  # TCTI, ESAPI, SYS, MU: the transport side
ESYS_TR_NONE = 0xFFF
ESYS_TR_PASSWORD = 0x0FF
TPM2_CAP_PCRS = 0x5
LOCALITY_HINT = {
    "device": "this kernel's TPM driver is at locality 0; PCR{pcr} needs locality {need}",
    "other": "the TPM is at a locality below what PCR{pcr} needs ({need})",
}
PCR_EXTEND_LOCALITIES = {17: "2-4", 18: "2-4", 19: "2-3", 20: "1-3", 21: "2", 22: "2"}


def _binding() -> tuple[Any, Any]:
    """(ffi, lib) of tpm2-pytss's compiled binding, without importing the tpm2_pytss package."""
    name = "tpm2_pytss._libtpm2_pytss"
    module = sys.modules.get(name)
    if module is None:
        import importlib.machinery
        import importlib.util

        package = importlib.util.find_spec("tpm2_pytss")
        spec = (importlib.machinery.PathFinder.find_spec(name, package.submodule_search_locations)
                if package and package.submodule_search_locations else None)
        if spec is None or spec.loader is None:
            raise TpmError(TpmErrorKind.UNAVAILABLE,
                           "tpm2-pytss (its compiled _libtpm2_pytss binding) is not installed")
        module = importlib.util.module_from_spec(spec)
        os.environ.setdefault("TSS2_LOG", "all+NONE")  # errors are ours to report, not esys's stderr chatter
        spec.loader.exec_module(module)
        sys.modules[name] = module  # the package, if something imports it later, shares this one
    return module.ffi, module.lib


def _release(ffi: Any, lib: Any, esys: Any, tcti: Any) -> None:
    if esys[0] != ffi.NULL:
        lib.Esys_Finalize(esys)
    if tcti[0] != ffi.NULL:
        lib.Tss2_TctiLdr_Finalize(tcti)


class Tss2Error(Exception):
    """A libtss2 return code other than success."""

    def __init__(self, rc: int, message: str) -> None:
        super().__init__(f"{message} (0x{rc:x})")
        self.rc = rc

    @property
    def error(self) -> int:
        """The code without a format-one code's handle/parameter/session number (as tpm2-pytss decodes it)."""
        return 0x80 | (self.rc & 0x3F) if self.rc & 0x80 else self.rc


def classify(err: Exception, what: str) -> TpmError:
    """TSS2 and transport failures -> TpmError(kind): locality, retry, unavailable, command."""
    if isinstance(err, Tss2Error):
        rc, layer, code = err.rc, err.rc & 0xFF0000, err.error
        if layer == 0 and code == RC_LOCALITY:
            return TpmError(TpmErrorKind.LOCALITY, f"{what}: TPM_RC_LOCALITY", rc=rc)
        if layer == 0 and code in RETRIABLE:
            return TpmError(TpmErrorKind.RETRY,
                            f"{what}: the TPM kept answering {RETRIABLE[code]} (retry, yielded, testing)", rc=rc)
        if layer in TRANSPORT_LAYERS:
            return TpmError(TpmErrorKind.UNAVAILABLE, f"{what}: {err}", rc=rc)
        return TpmError(TpmErrorKind.COMMAND, f"{what}: {err}", rc=rc)
    return TpmError(TpmErrorKind.UNAVAILABLE, f"{what}: {err}")


class Tpm:
    """An open TPM; ``banks`` is read once (TPM2_GetCapability PCRS) and cached for the session."""

    def __init__(self, tcti: str = DEFAULT_TCTI, *, locality: int | None = None) -> None:
        self.tcti_string = tcti
        self.commands = 0
        self._banks: tuple[str, ...] | None = None
        self._ffi, self._lib = _binding()
        self._tcti: Any = self._ffi.new("TSS2_TCTI_CONTEXT **")
        self._esys: Any = self._ffi.new("ESYS_CONTEXT **")
        # Released in order (ESAPI, then the TCTI) by close(), or when the Tpm is collected.
        self._release = weakref.finalize(self, _release, self._ffi, self._lib, self._esys, self._tcti)
        try:
            self._check(self._lib.Tss2_TctiLdr_Initialize(tcti.encode(), self._tcti))
            self._check(self._lib.Esys_Initialize(self._esys, self._tcti[0], self._ffi.NULL))
        except Tss2Error as err:
            self.close()
            raise TpmError(TpmErrorKind.UNAVAILABLE, f"cannot open TCTI {tcti!r}: {err}") from None
        if locality is not None:
            self.set_locality(locality)

    def _require_open(self, what: str) -> None:
        if not self._release.alive:
            raise TpmError(TpmErrorKind.UNAVAILABLE, f"{what}: the TPM connection is closed")

    def _check(self, rc: int) -> None:
        if rc:
            raise Tss2Error(rc, self._ffi.string(self._lib.Tss2_RC_Decode(rc)).decode(errors="replace"))

    def set_locality(self, locality: int) -> None:
        """Tss2_Tcti_SetLocality: the swtpm and mssim TCTIs support it; the kernel device does not."""
        self._require_open(f"TCTI {self.tcti_string!r}")
        common = self._ffi.cast("TSS2_TCTI_CONTEXT_COMMON_V1 *", self._tcti[0])
        try:
            if common.setLocality == self._ffi.NULL:
                raise Tss2Error(0xA0002, "tcti:not implemented")  # TSS2_TCTI_RC_NOT_IMPLEMENTED
            self._check(common.setLocality(self._tcti[0], locality))
        except Tss2Error as err:
            raise TpmError(TpmErrorKind.LOCALITY, f"TCTI {self.tcti_string!r} cannot select locality {locality}: {err}",
                           rc=err.rc) from None

    def close(self) -> None:
        self._release()

    def __enter__(self) -> Tpm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One TPM command, retried with bounded exponential backoff while the TPM asks to retry.

        ESAPI itself resubmits RETRY/YIELDED/TESTING answers up to 5 times without pausing; these rounds
        add the pause a self-testing TPM needs, so at most RETRY_ATTEMPTS x 5 commands are sent.
        """
        self._require_open(what)
        delay = RETRY_FIRST_DELAY
        for attempt in range(RETRY_ATTEMPTS):
            self.commands += 1
            log.debug("%s via %s (attempt %d)", what, self.tcti_string, attempt + 1)
            try:
                return fn()
            except (Tss2Error, OSError) as err:
                classified = classify(err, what)
                if classified.kind != TpmErrorKind.RETRY or attempt == RETRY_ATTEMPTS - 1:
                    raise classified from None
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def banks(self) -> tuple[str, ...]:
        """Active PCR banks: those with any PCR allocated (TPM2_GetCapability, TPM_CAP_PCRS)."""
        if self._banks is None:
            self._banks = self._call("TPM2_GetCapability(PCRS)", self._get_banks)
        return self._banks

    def _get_banks(self) -> tuple[str, ...]:
        ffi, lib = self._ffi, self._lib
        more, data = ffi.new("TPMI_YES_NO *"), ffi.new("TPMS_CAPABILITY_DATA **")
        self._check(lib.Esys_GetCapability(self._esys[0], ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_PCRS,
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
        self._check(lib.Esys_PCR_Read(self._esys[0], ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, selection, counter,
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
            self._call(f"TPM2_PCR_Extend(PCR{pcr})", lambda: self._check(self._lib.Esys_PCR_Extend(
                self._esys[0], pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, values)))
        except TpmError as err:
            if err.kind == TpmErrorKind.LOCALITY:
                hint = LOCALITY_HINT["device" if self.tcti_string.startswith("device") else "other"]
                need = PCR_EXTEND_LOCALITIES.get(pcr, "0-4")
                raise TpmError(TpmErrorKind.LOCALITY, hint.format(pcr=pcr, need=need), rc=err.rc) from None
            raise
