"""The attestation key (AK): created under the endorsement key, bound to it by a verifier's challenge, used to
quote PCR17-22 (issue 14, host side).

The AK is a restricted signing key that lives only in the TPM: created from the TPM's own template
(restricted | sign | fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth, TCG "TPM 2.0 Keys for
Device Identity and Attestation" §7.3.4.1 / tpm2_createak's default) under the EK of the TCG EK Credential
Profile 2.0 (§B.3.3 template L-1, RSA 2048), and persisted with TPM2_EvictControl. Its private part never
leaves the TPM (fixedTPM, fixedParent): sld has no command that could export it. The EK's authPolicy is
PolicySecret(TPM_RH_ENDORSEMENT), so every use of the EK as a parent (Create, Load, ActivateCredential)
goes through a policy session that satisfied it.

Every structure handed to ESAPI is built with sld.formats.tpm2's construct declarations and unmarshalled
by libtss2-mu (sld.tss): the templates read as the spec tables they copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from sld.errors import FormatError, TpmError
from sld.formats import tpm2
from sld.formats.names import ALG_ID
from sld.formats.quote import pcr_bitmap, read_attest
from sld.formats.tpm2_names import TpmAlg, TpmEccCurve
from sld.records import Record
from sld.tpm import Tpm
from sld.tss import Tss2Error, binding, marshal, unmarshal
from sld.vocab import TpmErrorKind

# Generating an RSA key can take a hardware TPM many seconds: TPM2_CreatePrimary and TPM2_Create get the
# bound the Linux TPM driver gives them (TPM2_DURATION_LONG_LONG, 300 s), not the session's few seconds.
KEYGEN_TIMEOUT = 300.0
QUOTED_PCRS = tuple(range(17, 23))  # the DRTM PCRs every quote selects (TCG D-RTM Architecture §4: PCR17-22)
DEFAULT_HANDLE = 0x81010002  # TCG "Registry of Reserved TPM 2.0 Handles and Localities" §2.3.1: an AK
# The EK certificates a manufacturer provisions (TCG EK Credential Profile 2.0 §2.2.1.4 low range, §2.2.1.5 high
# range): index -> the key it certifies. swtpm_setup --create-ek-cert writes 0x01C00002 and 0x01C00016.
EK_CERT_INDICES = {
    0x01C00002: "RSA 2048 EK (template L-1)",
    0x01C0000A: "ECC NIST P-256 EK (template L-2)",
    0x01C00012: "RSA 2048 EK (template H-1)",
    0x01C00014: "ECC NIST P-256 EK (template H-2)",
    0x01C00016: "ECC NIST P-384 EK (template H-3)",
}
# PolicySecret(TPM_RH_ENDORSEMENT) with SHA-256: the EK's authPolicy (EK Credential Profile 2.0 §B.6.2).
EK_POLICY = bytes.fromhex("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa")

_NULL_SCHEME = {"scheme": TpmAlg.NULL, "details": {}}
_NULL_SYMMETRIC = {"algorithm": TpmAlg.NULL, "details": {}}
_AES128_CFB = {"algorithm": TpmAlg.AES, "details": {"keyBits": 128, "mode": TpmAlg.CFB}}
_EK_ATTRIBUTES = {"fixedTPM": True, "fixedParent": True, "sensitiveDataOrigin": True, "adminWithPolicy": True,
                  "restricted": True, "decrypt": True}
EK_TEMPLATES = {  # EK Credential Profile 2.0 §B.3.3 template L-1 (RSA 2048), §B.3.4 template L-2 (ECC NIST P-256)
    "rsa": {"type": TpmAlg.RSA, "nameAlg": TpmAlg.SHA256, "objectAttributes": _EK_ATTRIBUTES,
            "authPolicy": {"buffer": EK_POLICY},
            "parameters": {"symmetric": _AES128_CFB, "scheme": _NULL_SCHEME, "keyBits": 2048, "exponent": 0},
            "unique": {"buffer": bytes(256)}},
    "ecc": {"type": TpmAlg.ECC, "nameAlg": TpmAlg.SHA256, "objectAttributes": _EK_ATTRIBUTES,
            "authPolicy": {"buffer": EK_POLICY},
            "parameters": {"symmetric": _AES128_CFB, "scheme": _NULL_SCHEME, "curveID": TpmEccCurve.NIST_P256,
                           "kdf": _NULL_SCHEME},
            "unique": {"x": {"buffer": bytes(32)}, "y": {"buffer": bytes(32)}}},
}
_AK_ATTRIBUTES = {"fixedTPM": True, "fixedParent": True, "sensitiveDataOrigin": True, "userWithAuth": True,
                  "restricted": True, "sign": True}
_SHA256 = {"hashAlg": TpmAlg.SHA256}
AK_TEMPLATES = {  # a restricted signing key, the TPM's own signing scheme fixed in the key (tpm2_createak's)
    "rsa": {"type": TpmAlg.RSA, "nameAlg": TpmAlg.SHA256, "objectAttributes": _AK_ATTRIBUTES,
            "authPolicy": {"buffer": b""},
            "parameters": {"symmetric": _NULL_SYMMETRIC,
                           "scheme": {"scheme": TpmAlg.RSASSA, "details": _SHA256}, "keyBits": 2048, "exponent": 0},
            "unique": {"buffer": b""}},
    "ecc": {"type": TpmAlg.ECC, "nameAlg": TpmAlg.SHA256, "objectAttributes": _AK_ATTRIBUTES,
            "authPolicy": {"buffer": b""},
            "parameters": {"symmetric": _NULL_SYMMETRIC,
                           "scheme": {"scheme": TpmAlg.ECDSA, "details": _SHA256},
                           "curveID": TpmEccCurve.NIST_P256, "kdf": _NULL_SCHEME},
            "unique": {"x": {"buffer": b""}, "y": {"buffer": b""}}},
}


def public_template(template: dict[str, Any]) -> bytes:
    """A TPM2B_PUBLIC (TPM 2.0 Part 2 §12.2.5) for TPM2_CreatePrimary / TPM2_Create."""
    return tpm2.build_struct(tpm2.TPM2B_PUBLIC, {"publicArea": template}, "TPM2B_PUBLIC")


def pcr_selection(bank: str, pcrs: Iterable[int] = QUOTED_PCRS) -> bytes:
    """A TPML_PCR_SELECTION (§10.9.7) of one bank."""
    return tpm2.build_struct(tpm2.TPML_PCR_SELECTION, {"pcrSelections": [
        {"hash": ALG_ID[bank], "pcrSelect": pcr_bitmap(tuple(pcrs))}]}, "TPML_PCR_SELECTION")


class AkInfo(Record):
    """What ``sld ak create`` reports: the AK's TPM2B_PUBLIC and Name, the EKs' (RSA, the AK's parent, and
    ECC), and the EK certificates the TPM holds."""

    handle: int
    public: bytes  # TPM2B_PUBLIC as TPM2_ReadPublic returns it
    name: bytes  # TPM2B_NAME's bytes: nameAlg || H(TPMT_PUBLIC)
    ek_public: dict[str, bytes]  # "rsa" (template L-1), "ecc" (template L-2): TPM2B_PUBLIC
    ek_certificates: dict[int, bytes]  # EK_CERT_INDICES present -> DER


class _Session:
    """Transient objects and sessions of one operation, flushed when it ends (the swtpm TCTI has no resource
    manager, and a TPM holds only three transient objects); ESAPI output buffers freed with Esys_Free."""

    def __init__(self, tpm: Tpm) -> None:
        self.tpm = tpm
        self.ffi, self.lib = binding()
        self._flush: list[int] = []
        self._close: list[int] = []
        self._outputs: list[Any] = []
        self._nv_max: int | None = None

    def out(self, ctype: str) -> Any:
        """An ESAPI output pointer (``T **``), freed when the operation ends."""
        pointer = self.ffi.new(f"{ctype} **")
        self._outputs.append(pointer)
        return pointer

    def transient(self, handle: int) -> int:
        """A loaded object or session, flushed (TPM2_FlushContext) when the operation ends."""
        self._flush.append(handle)
        return handle

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for pointer in self._outputs:
            if pointer[0] != self.ffi.NULL:
                self.lib.Esys_Free(pointer[0])
        for handle in self._close:  # ESAPI's own record of a persistent object: no TPM command
            self.tpm.esys_local(self._forget(handle))
        for handle in reversed(self._flush):
            try:
                self.tpm.esys("TPM2_FlushContext", self._flush_call(handle))
            except TpmError:
                if exc is None:
                    raise  # a clean run must leave the TPM clean; after a failure, the first error is the news

    def _forget(self, handle: int) -> Callable[[Any], int]:
        record = self.ffi.new("ESYS_TR *", handle)
        return lambda ctx: int(self.lib.Esys_TR_Close(ctx, record))

    def _flush_call(self, handle: int) -> Callable[[Any], int]:
        return lambda ctx: int(self.lib.Esys_FlushContext(ctx, handle))

    def command(self, what: str, call: Callable[[Any], int], timeout: float | None = None) -> None:
        """One TPM command of this operation (bounded, retried and classified by sld.tpm)."""
        self.tpm.esys(what, call, timeout)

    def sized(self, ctype: str, field: str, data: bytes) -> Any:
        """A TPM2B of ``data``; more than the structure holds (Part 2's maximum) is a FormatError naming it."""
        value = self.ffi.new(f"{ctype} *")
        room = len(getattr(value, field))
        if len(data) > room:
            raise FormatError(ctype, f"{len(data)} bytes, the structure holds at most {room}", field=field)
        value.size = len(data)
        self.ffi.memmove(getattr(value, field), data, len(data))
        return value

    def handle(self) -> Any:
        """A new ``ESYS_TR *`` for a command's output handle."""
        return self.ffi.new("ESYS_TR *")

    def create_ek(self, alg: str = "rsa") -> tuple[int, bytes]:
        """TPM2_CreatePrimary(TPM_RH_ENDORSEMENT, template L-1 or L-2): the EK (deterministic: the same key
        each time, the one its certificate names)."""
        lib, ffi = self.lib, self.ffi
        ek, public = self.handle(), self.out("TPM2B_PUBLIC")
        template = unmarshal("TPM2B_PUBLIC", public_template(EK_TEMPLATES[alg]))
        sensitive = ffi.new("TPM2B_SENSITIVE_CREATE *")
        self.command(f"TPM2_CreatePrimary(EK {alg})", lambda ctx: lib.Esys_CreatePrimary(
            ctx, lib.ESYS_TR_RH_ENDORSEMENT, lib.ESYS_TR_PASSWORD, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, sensitive,
            template, ffi.new("TPM2B_DATA *"), ffi.new("TPML_PCR_SELECTION *"), ek, public, ffi.NULL, ffi.NULL,
            ffi.NULL), KEYGEN_TIMEOUT)
        return self.transient(ek[0]), marshal("TPM2B_PUBLIC", public[0])

    def ek_policy(self) -> int:
        """A policy session that satisfied PolicySecret(TPM_RH_ENDORSEMENT): authorises one use of the EK."""
        lib, ffi = self.lib, self.ffi
        session = self.handle()
        symmetric = ffi.new("TPMT_SYM_DEF *", {"algorithm": lib.TPM2_ALG_NULL})
        self.command("TPM2_StartAuthSession(policy)", lambda ctx: lib.Esys_StartAuthSession(
            ctx, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE,
            ffi.NULL, lib.TPM2_SE_POLICY, symmetric, lib.TPM2_ALG_SHA256, session))
        self.transient(session[0])
        self.command("TPM2_PolicySecret(TPM_RH_ENDORSEMENT)", lambda ctx: lib.Esys_PolicySecret(
            ctx, lib.ESYS_TR_RH_ENDORSEMENT, session[0], lib.ESYS_TR_PASSWORD, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE,
            ffi.NULL, ffi.NULL, ffi.NULL, 0, ffi.NULL, ffi.NULL))
        return int(session[0])

    def persistent(self, handle: int, *, keep: bool = False) -> int | None:
        """The ESYS_TR of a persistent or NV handle (Esys_TR_FromTPMPublic: TPM2_ReadPublic or NV_ReadPublic),
        or None when the TPM holds nothing there (TPM_RC_HANDLE). ``keep``: the record outlives this operation
        (ESAPI frees it with the connection, Esys_Finalize)."""
        lib, tr = self.lib, self.handle()
        try:
            self.command(f"Esys_TR_FromTPMPublic(0x{handle:08x})", lambda ctx: lib.Esys_TR_FromTPMPublic(
                ctx, handle, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, tr))
        except TpmError as err:
            if self.absent(err):
                return None
            raise
        if not keep:
            self.close_record(tr[0])
        return int(tr[0])

    def close_record(self, tr: int) -> None:
        """ESAPI's record of a persistent object, closed (Esys_TR_Close, no TPM command) when the operation ends."""
        self._close.append(tr)

    def absent(self, err: TpmError) -> bool:
        """The TPM's answer was TPM_RC_HANDLE (Part 2 §6.6.3): nothing at the handle a command named."""
        return err.kind == TpmErrorKind.COMMAND and err.rc is not None and \
            Tss2Error(err.rc, "").error == self.lib.TPM2_RC_HANDLE

    def read_public(self, tr: int) -> tuple[bytes, bytes]:
        """TPM2_ReadPublic: the object's TPM2B_PUBLIC and Name as the TPM states them."""
        lib = self.lib
        public, name = self.out("TPM2B_PUBLIC"), self.out("TPM2B_NAME")
        self.command("TPM2_ReadPublic", lambda ctx: lib.Esys_ReadPublic(
            ctx, tr, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, public, name, self.ffi.NULL))
        return marshal("TPM2B_PUBLIC", public[0]), bytes(self.ffi.buffer(name[0].name, name[0].size))

    def ak(self, handle: int, *, keep: bool = False) -> int:
        """The persisted AK's ESYS_TR, or a TpmError naming the handle and how to make one."""
        tr = self.persistent(handle, keep=keep)
        if tr is None:
            raise _no_ak(handle)
        return tr

    def nv_read(self, index: int) -> bytes | None:
        """The whole contents of an NV index (TPM2_NV_ReadPublic for its size, TPM2_NV_Read in chunks)."""
        lib, ffi = self.lib, self.ffi
        nv = self.persistent(index)
        if nv is None:
            return None
        public = self.out("TPM2B_NV_PUBLIC")
        self.command(f"TPM2_NV_ReadPublic(0x{index:08x})", lambda ctx: lib.Esys_NV_ReadPublic(
            ctx, nv, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, public, ffi.NULL))
        size, data = public[0].nvPublic.dataSize, b""
        while len(data) < size:
            data += self._nv_chunk(nv, index, len(data), min(self.nv_buffer_max(), size - len(data)))
        return data

    def nv_buffer_max(self) -> int:
        """TPM2_PT_NV_BUFFER_MAX (Part 2 §6.13, a fixed property every TPM reports), read once per operation with
        TPM2_GetCapability(TPM_PROPERTIES): the most one TPM2_NV_Read may return (1024 on swtpm and common
        TPMs), within what ESAPI's TPM2B_MAX_NV_BUFFER holds; a TPM that reports none is a TpmError."""
        if self._nv_max is None:
            lib, ffi = self.lib, self.ffi
            more, data = ffi.new("TPMI_YES_NO *"), self.out("TPMS_CAPABILITY_DATA")
            self.command("TPM2_GetCapability(TPM_PT_NV_BUFFER_MAX)", lambda ctx: lib.Esys_GetCapability(
                ctx, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, lib.TPM2_CAP_TPM_PROPERTIES,
                lib.TPM2_PT_NV_BUFFER_MAX, 1, more, data))
            properties = data[0].data.tpmProperties
            said = [p.value for p in properties.tpmProperty[0 : properties.count]
                    if p.property == lib.TPM2_PT_NV_BUFFER_MAX]
            if not said or not said[0]:
                raise TpmError(TpmErrorKind.COMMAND, "TPM2_GetCapability(TPM_PROPERTIES) reports no "
                                                     "TPM_PT_NV_BUFFER_MAX: NV indices cannot be read")
            self._nv_max = min(said[0], len(ffi.new("TPM2B_MAX_NV_BUFFER *").buffer))
        return self._nv_max

    def _nv_chunk(self, nv: int, index: int, offset: int, size: int) -> bytes:
        lib, chunk = self.lib, self.out("TPM2B_MAX_NV_BUFFER")
        self.command(f"TPM2_NV_Read(0x{index:08x})", lambda ctx: lib.Esys_NV_Read(
            ctx, nv, nv, lib.ESYS_TR_PASSWORD, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, size, offset, chunk))
        return bytes(self.ffi.buffer(chunk[0].buffer, chunk[0].size))

    def quote(self, key: int, nonce: bytes, bank: str) -> tuple[bytes, bytes]:
        """One TPM2_Quote of PCR17-22 of ``bank``: (TPMS_ATTEST, marshalled TPMT_SIGNATURE)."""
        lib, ffi = self.lib, self.ffi
        qualifying = self.sized("TPM2B_DATA", "buffer", nonce)
        scheme = ffi.new("TPMT_SIG_SCHEME *", {"scheme": lib.TPM2_ALG_NULL})  # the AK's own scheme
        selection = unmarshal("TPML_PCR_SELECTION", pcr_selection(bank))
        quoted, signature = self.out("TPM2B_ATTEST"), self.out("TPMT_SIGNATURE")
        self.command(f"TPM2_Quote({bank})", lambda ctx: lib.Esys_Quote(
            ctx, key, lib.ESYS_TR_PASSWORD, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, qualifying, scheme, selection,
            quoted, signature))
        return bytes(ffi.buffer(quoted[0].attestationData, quoted[0].size)), marshal("TPMT_SIGNATURE", signature[0])


def _no_ak(handle: int) -> TpmError:
    return TpmError(TpmErrorKind.COMMAND, f"no attestation key at 0x{handle:08x} (create one: sld ak create)")


def create(tpm: Tpm, alg: str = "rsa", handle: int = DEFAULT_HANDLE, *, replace: bool = False) -> AkInfo:
    """``sld ak create``: TPM2_Create of an AK under the RSA EK (policy session), TPM2_Load, TPM2_EvictControl;
    the ECC EK's public key and every EK certificate present, for the verifier's enrolment."""
    with _Session(tpm) as s:
        lib, ffi = s.lib, s.ffi
        existing = s.persistent(handle)
        if existing is not None and not replace:
            raise TpmError(TpmErrorKind.COMMAND, f"0x{handle:08x} holds a key already (sld ak create --replace "
                                                 "evicts it)")
        ek, ek_public = s.create_ek()
        private, public = s.out("TPM2B_PRIVATE"), s.out("TPM2B_PUBLIC")
        template = unmarshal("TPM2B_PUBLIC", public_template(AK_TEMPLATES[alg]))
        session = s.ek_policy()
        s.command(f"TPM2_Create(AK {alg})", lambda ctx: lib.Esys_Create(
            ctx, ek, session, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, ffi.new("TPM2B_SENSITIVE_CREATE *"), template,
            ffi.new("TPM2B_DATA *"), ffi.new("TPML_PCR_SELECTION *"), private, public, ffi.NULL, ffi.NULL,
            ffi.NULL), KEYGEN_TIMEOUT)
        loaded, session = s.handle(), s.ek_policy()
        s.command("TPM2_Load(AK)", lambda ctx: lib.Esys_Load(
            ctx, ek, session, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE, private[0], public[0], loaded))
        s.transient(loaded[0])
        if existing is not None:
            s.command(f"TPM2_EvictControl(evict 0x{handle:08x})", lambda ctx: lib.Esys_EvictControl(
                ctx, lib.ESYS_TR_RH_OWNER, existing, lib.ESYS_TR_PASSWORD, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE,
                handle, ffi.new("ESYS_TR *")))
        persisted = s.handle()
        s.command(f"TPM2_EvictControl(persist 0x{handle:08x})", lambda ctx: lib.Esys_EvictControl(
            ctx, lib.ESYS_TR_RH_OWNER, loaded[0], lib.ESYS_TR_PASSWORD, lib.ESYS_TR_NONE, lib.ESYS_TR_NONE,
            handle, persisted))
        ak_public, name = s.read_public(persisted[0])
        certificates = {index: cert for index in EK_CERT_INDICES if (cert := s.nv_read(index)) is not None}
    with _Session(tpm) as s:  # its own session: a TPM holds three transient objects, the one above used them
        _, ecc_public = s.create_ek("ecc")
    return AkInfo(handle, ak_public, name, {"rsa": ek_public, "ecc": ecc_public}, certificates)


def activate(tpm: Tpm, credential_blob: bytes, secret: bytes, handle: int = DEFAULT_HANDLE) -> bytes:
    """``sld ak activate``: TPM2_ActivateCredential (Part 3 §12.5) of a TPM2_MakeCredential challenge made for
    this TPM's EK and the AK's Name; the TPM releases the secret only if both match."""
    with _Session(tpm) as s:
        lib, ffi = s.lib, s.ffi
        ak = s.ak(handle)
        ek, _ = s.create_ek()
        session = s.ek_policy()
        blob = s.sized("TPM2B_ID_OBJECT", "credential", credential_blob)
        encrypted = s.sized("TPM2B_ENCRYPTED_SECRET", "secret", secret)
        out = s.out("TPM2B_DIGEST")
        s.command("TPM2_ActivateCredential", lambda ctx: lib.Esys_ActivateCredential(
            ctx, ak, ek, lib.ESYS_TR_PASSWORD, session, lib.ESYS_TR_NONE, blob, encrypted, out))
        return bytes(ffi.buffer(out[0].buffer, out[0].size))


class Quote(Record):
    """One TPM2_Quote of PCR17-22 of one bank, and the values of those PCRs read after it."""

    bank: str
    attest: bytes  # TPMS_ATTEST exactly as the TPM signed it (TPM2B_ATTEST.attestationData)
    signature: bytes  # TPMT_SIGNATURE, marshalled
    pcrs: dict[int, bytes]


class AttestationKey:
    """The persisted AK as one TPM connection goes on using it: the daemon answers every attest request with it.

    Its ESYS_TR is made once (Esys_TR_FromTPMPublic, which sends TPM2_ReadPublic) and kept until the connection
    closes, and its TPM2B_PUBLIC and Name are read once, so a request sends the TPM its quotes and the PCR reads
    only. A key replaced at the handle meanwhile (``sld ak create --replace`` while the daemon runs) shows in the
    quotes themselves: TPMS_ATTEST.qualifiedSigner (Part 2 §10.12.12) is the qualified Name of the key that
    signed, so when the TPM names another signer than the one last seen, the public area is read again. A key
    evicted meanwhile (TPM_RC_HANDLE) is reported as no key at all, and the next quote looks for one afresh.
    """

    def __init__(self, tpm: Tpm, handle: int = DEFAULT_HANDLE) -> None:
        self.tpm = tpm
        self.handle = handle
        self.public = b""  # TPM2B_PUBLIC as TPM2_ReadPublic returned it
        self.name = b""  # TPM2B_NAME's bytes
        self._tr: int | None = None
        self._signer = b""  # qualifiedSigner of the quotes the public area above was read for

    def quote(self, nonce: bytes, banks: Iterable[str]) -> tuple[Quote, ...]:
        """TPM2_Quote (Part 3 §18.4) of PCR17-22, one per bank, signed by the AK with its own scheme; then the
        PCR values (TPM2_PCR_Read), read after the quotes as a verifier reads them against the quoted digest."""
        banks = tuple(banks)
        with _Session(self.tpm) as s:
            if self._tr is None:
                self._tr = s.ak(self.handle, keep=True)
            try:
                signed = [(bank, *s.quote(self._tr, nonce, bank)) for bank in banks]
            except TpmError as err:
                if not s.absent(err):
                    raise
                s.close_record(self._tr)
                self._tr, self._signer = None, b""
                raise _no_ak(self.handle) from None
            signers = [read_attest(attest).qualified_signer for _, attest, _ in signed]
            if set(signers) != {self._signer}:
                self.public, self.name = s.read_public(self._tr)
                self._signer = signers[-1]
        values = self.tpm.read_pcrs(QUOTED_PCRS, banks)
        return tuple(Quote(bank, attest, sig, values[bank]) for bank, attest, sig in signed)
