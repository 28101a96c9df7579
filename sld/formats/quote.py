"""The three TPM structures a verifier reads from evidence, read with ``int.from_bytes`` alone.

:mod:`sld.formats.tpm2` declares them with construct, and that declaration is the reference; this
reader exists because importing construct costs a cold ``sld verify --evidence`` more than all of
its checks (benchmarks/verify_evidence.py). Tests hold the two to the same fields on structures a
real TPM returned (tests/swtpm/test_tpm2_formats.py: swtpm through tpm2-tools) and on built ones,
and to the same refusals of every truncation and of trailing bytes (tests/unit/test_quote_reader.py).
Field names are those of TPM 2.0 Part 2. The PCR-bitmap and Name helpers live here too, for the same
reason: the verifier and ``sld attest`` use them without construct.
"""

from __future__ import annotations

import hashlib

from sld.errors import FormatError
from sld.formats.names import ALGORITHMS, hashlib_name
from sld.formats.tpm2_names import TpmAlg, TpmSt


class _Reader:
    """Big-endian fields of one buffer; running past its end names the structure and field (Part 1 §18.2)."""

    __slots__ = ("data", "at", "structure")

    def __init__(self, data: bytes, structure: str) -> None:
        self.data = data
        self.at = 0
        self.structure = structure

    def take(self, n: int, field: str) -> bytes:
        """The next ``n`` bytes; fewer left is a FormatError naming ``field`` and its offset."""
        if self.at + n > len(self.data):
            raise FormatError(self.structure, f"truncated: the region holds only {len(self.data) - self.at} "
                              "bytes from here", field=field, offset=self.at)
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def uint(self, n: int, field: str) -> int:
        """A big-endian unsigned field of ``n`` bytes (TPM 2.0 Part 1 §18.2: every TPM integer is big-endian)."""
        return int.from_bytes(self.take(n, field), "big")

    def sized(self, field: str) -> bytes:
        """A TPM2B: UINT16 size, then that many bytes (§10.4)."""
        return self.take(self.uint(2, field), field)

    def end(self) -> None:
        """Bytes left after the structure are refused: a signed structure is accepted whole or not at all."""
        if self.at != len(self.data):
            raise FormatError(self.structure, f"{len(self.data) - self.at} bytes after the structure",
                              offset=self.at)


# The members of the unions these structures hold (Part 2 §11.1.7, §11.2, §11.3.3, §12.2.3), each with
# the UINT16 fields that follow its selector. sld.formats.tpm2 builds its Switch cases from these tables,
# so the reference and this reader know exactly the same members.
SIGNATURE_SCHEMES = (TpmAlg.RSASSA, TpmAlg.RSAPSS, TpmAlg.ECDSA)
KEY_TYPES = (TpmAlg.RSA, TpmAlg.ECC)
_HASH = ("hashAlg",)
SYMMETRIC: dict[int, tuple[str, ...]] = {TpmAlg.NULL: (), TpmAlg.AES: ("keyBits", "mode"),
                                         TpmAlg.SM4: ("keyBits", "mode"), TpmAlg.CAMELLIA: ("keyBits", "mode")}
RSA_SCHEMES: dict[int, tuple[str, ...]] = {TpmAlg.NULL: (), TpmAlg.RSAES: (), TpmAlg.RSASSA: _HASH,
                                           TpmAlg.RSAPSS: _HASH, TpmAlg.OAEP: _HASH}
ECC_SCHEMES: dict[int, tuple[str, ...]] = {TpmAlg.NULL: (), TpmAlg.ECDSA: _HASH, TpmAlg.ECDH: _HASH,
                                           TpmAlg.ECMQV: _HASH, TpmAlg.SM2: _HASH, TpmAlg.ECSCHNORR: _HASH,
                                           TpmAlg.ECDAA: ("hashAlg", "count")}  # ECDAA: its commit count
KDF_SCHEMES: dict[int, tuple[str, ...]] = {TpmAlg.NULL: (), TpmAlg.MGF1: _HASH, TpmAlg.KDF1_SP800_56A: _HASH,
                                           TpmAlg.KDF2: _HASH, TpmAlg.KDF1_SP800_108: _HASH}


def _member(r: _Reader, members: dict[int, tuple[str, ...]], field: str, selector: str) -> tuple[int, dict[str, int]]:
    """A union's selector (one the table knows) and its UINT16 details."""
    at = r.at
    chosen = r.uint(2, f"{field}.{selector}")
    if chosen not in members:
        raise FormatError(r.structure, f"0x{chosen:04x} is not one of its members", field=f"{field}.{selector}",
                          offset=at)
    return chosen, {name: r.uint(2, f"{field}.details.{name}") for name in members[chosen]}


class Attest:
    """TPMS_ATTEST (§10.12.12) with TPMS_CLOCK_INFO flattened; ``selections``/``pcr_digest`` for a quote."""

    __slots__ = ("magic", "type", "qualified_signer", "extra_data", "clock", "reset_count", "restart_count",
                 "safe", "firmware_version", "selections", "pcr_digest")

    def __init__(self, r: _Reader) -> None:
        self.magic = r.uint(4, "magic")
        self.type = r.uint(2, "type")
        self.qualified_signer = r.sized("qualifiedSigner.name")
        self.extra_data = r.sized("extraData.buffer")
        self.clock = r.uint(8, "clockInfo.clock")
        self.reset_count = r.uint(4, "clockInfo.resetCount")
        self.restart_count = r.uint(4, "clockInfo.restartCount")
        self.safe = r.uint(1, "clockInfo.safe")
        self.firmware_version = r.uint(8, "firmwareVersion")
        self.selections: tuple[tuple[int, bytes], ...] = ()  # (hash alg, pcrSelect bitmap) per TPMS_PCR_SELECTION
        self.pcr_digest = b""
        if self.type == TpmSt.ATTEST_QUOTE:  # TPMS_QUOTE_INFO (§10.12.1); other kinds are not read
            count = r.uint(4, "attested.pcrSelect.count")
            self.selections = tuple(
                (r.uint(2, "attested.pcrSelect.pcrSelections.hash"),
                 r.take(r.uint(1, "attested.pcrSelect.pcrSelections.sizeofSelect"),
                         "attested.pcrSelect.pcrSelections.pcrSelect"))
                for _ in range(min(count, len(r.data))))  # a count past the data fails on the first short read
            self.pcr_digest = r.sized("attested.pcrDigest.buffer")
            r.end()


class Signature:
    """TPMT_SIGNATURE (§11.3.4): RSASSA/RSAPSS carry ``sig``; ECDSA carries ``r`` and ``s``."""

    __slots__ = ("sig_alg", "hash", "sig", "r", "s")

    def __init__(self, r: _Reader) -> None:
        self.sig_alg = r.uint(2, "sigAlg")
        if self.sig_alg not in SIGNATURE_SCHEMES:
            raise FormatError(r.structure, f"signature scheme 0x{self.sig_alg:04x} is not RSASSA, RSAPSS or ECDSA",
                              field="sigAlg", offset=0)
        self.hash = r.uint(2, "signature.hash")
        self.sig = self.r = self.s = b""
        if self.sig_alg == TpmAlg.ECDSA:
            self.r = r.sized("signature.signatureR.buffer")
            self.s = r.sized("signature.signatureS.buffer")
        else:
            self.sig = r.sized("signature.sig.buffer")
        r.end()


class Public:
    """TPMT_PUBLIC (§12.2.4) of an RSA or ECC key, in its TPM2B_PUBLIC (§12.2.5); its Name hashes ``area``."""

    __slots__ = ("area", "type", "name_alg", "attributes", "scheme", "scheme_hash", "exponent", "curve", "unique")

    def __init__(self, outer: _Reader) -> None:
        self.area = outer.sized("publicArea")
        outer.end()
        r = _Reader(self.area, "TPMT_PUBLIC")
        self.type = r.uint(2, "type")
        if self.type not in KEY_TYPES:
            raise FormatError("TPMT_PUBLIC", f"key type 0x{self.type:04x} is neither RSA nor ECC", field="type",
                              offset=0)
        self.name_alg = r.uint(2, "nameAlg")
        self.attributes = r.uint(4, "objectAttributes")
        r.sized("authPolicy.buffer")
        _member(r, SYMMETRIC, "parameters.symmetric", "algorithm")  # a storage key's, NULL for an AK
        rsa = self.type == TpmAlg.RSA
        self.scheme, details = _member(r, RSA_SCHEMES if rsa else ECC_SCHEMES, "parameters.scheme", "scheme")
        self.scheme_hash = details.get("hashAlg", 0)
        self.exponent = self.curve = 0
        self.unique: tuple[bytes, ...]
        if rsa:
            r.uint(2, "parameters.keyBits")
            self.exponent = r.uint(4, "parameters.exponent") or 65537  # 0: the default 2^16+1 (§12.2.3.5)
            self.unique = (r.sized("unique.buffer"),)
        else:
            self.curve = r.uint(2, "parameters.curveID")
            _member(r, KDF_SCHEMES, "parameters.kdf", "scheme")
            self.unique = (r.sized("unique.x.buffer"), r.sized("unique.y.buffer"))
        r.end()


def read_attest(data: bytes) -> Attest:
    """TPMS_ATTEST (TPM 2.0 Part 2 §10.12.12) of a quote, the exact bytes the AK signed."""
    return Attest(_Reader(data, "TPMS_ATTEST"))


def read_signature(data: bytes) -> Signature:
    """TPMT_SIGNATURE (TPM 2.0 Part 2 §11.3.4) over a quote: RSASSA or ECDSA, as the AK's scheme says."""
    return Signature(_Reader(data, "TPMT_SIGNATURE"))


def read_public(data: bytes) -> Public:
    """TPM2B_PUBLIC (TPM 2.0 Part 2 §12.2.5) of the AK, whose Name binds the quote to the key."""
    return Public(_Reader(data, "TPM2B_PUBLIC"))


def pcr_bitmap(pcrs: list[int] | tuple[int, ...], size: int = 3) -> bytes:
    """The ``pcrSelect`` bitmap of TPMS_PCR_SELECTION (§10.6.2) for these PCR indices."""
    bitmap = bytearray(size)
    for pcr in pcrs:
        bitmap[pcr // 8] |= 1 << (pcr % 8)
    return bytes(bitmap)


def selected_pcrs(bitmap: bytes) -> tuple[int, ...]:
    """The PCR indices a ``pcrSelect`` bitmap selects, ascending (the order TPM2_Quote digests them)."""
    return tuple(8 * i + bit for i, byte in enumerate(bitmap) for bit in range(8) if byte >> bit & 1)


def object_name(public_area: bytes) -> bytes:
    """An object's Name (Part 1 §16): nameAlg, then the nameAlg digest of its marshalled TPMT_PUBLIC."""
    name_alg = int.from_bytes(public_area[2:4], "big")
    digest = hashlib_name(ALGORITHMS[name_alg][0]) if name_alg in ALGORITHMS else None
    if digest is None or digest not in hashlib.algorithms_available:
        raise FormatError("TPMT_PUBLIC", f"nameAlg 0x{name_alg:04x} is not a hash sld can compute", field="nameAlg")
    return public_area[2:4] + hashlib.new(digest, public_area).digest()
