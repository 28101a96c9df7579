"""TPM 2.0 structures a quote is made of, declared with construct (parse AND build, big-endian).

Section numbers are those of TPM 2.0 Library Part 2 "Structures" (rev 1.59). The TPM marshals
every integer big-endian (Part 1 §18.2); a TPM2B is a UINT16 size followed by that many bytes
(§10.4); a union is selected by the algorithm or tag that precedes it (§10.1). ``sld ak`` builds
its key templates with these declarations and the tests build quotes and keys with them; they are
the reference the verifier's construct-free reader (:mod:`sld.formats.quote`) is held to.

``TPMS_ATTEST.magic`` is declared as a plain UINT32, not a ``Const``: an attest with another magic
must reach the verifier, which reports it as its own check (a forged attest signed with an
unrestricted key), rather than fail as malformed bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import construct as cs

from sld.formats._util import build, region
from sld.formats.quote import ECC_SCHEMES, KDF_SCHEMES, KEY_TYPES, RSA_SCHEMES, SIGNATURE_SCHEMES, SYMMETRIC
from sld.formats.tpm2_names import TpmAlg, TpmSt


def tpm2b(name: str) -> cs.Struct:
    """A sized buffer (TPM2B_DIGEST, TPM2B_DATA, TPM2B_NAME, ... §10.4): UINT16 size, then the bytes."""
    return cs.Struct("size" / cs.Rebuild(cs.Int16ub, cs.len_(cs.this[name])), name / cs.Bytes(cs.this.size))


TPM2B_DIGEST = tpm2b("buffer")  # §10.4.2
TPM2B_DATA = tpm2b("buffer")  # §10.4.3
TPM2B_NAME = tpm2b("name")  # §10.5.3
TPM2B_PUBLIC_KEY_RSA = tpm2b("buffer")  # §11.2.4.5
TPM2B_ECC_PARAMETER = tpm2b("buffer")  # §11.2.5.1

TPMS_PCR_SELECTION = cs.Struct(  # §10.6.2: one bank's PCR bitmap, PCR n in byte n/8, bit n%8
    "hash" / cs.Int16ub,
    "sizeofSelect" / cs.Rebuild(cs.Int8ub, cs.len_(cs.this.pcrSelect)),
    "pcrSelect" / cs.Bytes(cs.this.sizeofSelect),
)
TPML_PCR_SELECTION = cs.Struct(  # §10.9.7
    "count" / cs.Rebuild(cs.Int32ub, cs.len_(cs.this.pcrSelections)),
    "pcrSelections" / cs.Array(cs.this.count, TPMS_PCR_SELECTION),
)

TPMS_CLOCK_INFO = cs.Struct(  # §10.11.1: what ``--previous`` compares (reset/restart never go back)
    "clock" / cs.Int64ub,
    "resetCount" / cs.Int32ub,
    "restartCount" / cs.Int32ub,
    "safe" / cs.Int8ub,
)
TPMS_QUOTE_INFO = cs.Struct(  # §10.12.1
    "pcrSelect" / TPML_PCR_SELECTION,
    "pcrDigest" / TPM2B_DIGEST,
)
TPMS_ATTEST = cs.Struct(  # §10.12.12; only TPMS_QUOTE_INFO is declared, other kinds stay opaque bytes
    "magic" / cs.Int32ub,  # TPM_GENERATED_VALUE (§6.2) when the TPM made it; checked by the verifier
    "type" / cs.Int16ub,  # TPMI_ST_ATTEST (§10.12.10)
    "qualifiedSigner" / TPM2B_NAME,
    "extraData" / TPM2B_DATA,  # the verifier's nonce (qualifyingData of TPM2_Quote)
    "clockInfo" / TPMS_CLOCK_INFO,
    "firmwareVersion" / cs.Int64ub,
    "attested" / cs.Switch(cs.this.type, {TpmSt.ATTEST_QUOTE: TPMS_QUOTE_INFO}, default=cs.GreedyBytes),
    cs.Terminated,
)

def _tag(selectors: Iterable[int]) -> cs.Construct:
    """The UINT16 algorithm id selecting a union member; an id with no member is a named field error."""
    return cs.OneOf(cs.Int16ub, list(selectors))


TPMS_SIGNATURE_RSA = cs.Struct("hash" / cs.Int16ub, "sig" / TPM2B_PUBLIC_KEY_RSA)  # §11.3.1
TPMS_SIGNATURE_ECC = cs.Struct(  # §11.3.2
    "hash" / cs.Int16ub, "signatureR" / TPM2B_ECC_PARAMETER, "signatureS" / TPM2B_ECC_PARAMETER
)
_SIGNATURES = {alg: TPMS_SIGNATURE_ECC if alg == TpmAlg.ECDSA else TPMS_SIGNATURE_RSA for alg in SIGNATURE_SCHEMES}
TPMT_SIGNATURE = cs.Struct(  # §11.3.4; TPMU_SIGNATURE §11.3.3 for the schemes an AK signs with
    "sigAlg" / _tag(_SIGNATURES),
    "signature" / cs.Switch(cs.this.sigAlg, _SIGNATURES),
    cs.Terminated,
)

def _union(members: Mapping[int, tuple[str, ...]], selector: str = "scheme") -> cs.Struct:
    """TPMT_*_SCHEME / TPMT_SYM_DEF_OBJECT (§11.1.7, §11.2): a selector, then that member's UINT16 details."""
    cases = {alg: cs.Struct(*(name / cs.Int16ub for name in fields)) for alg, fields in members.items()}
    return cs.Struct(selector / _tag(cases), "details" / cs.Switch(cs.this[selector], cases))


TPMT_SYM_DEF_OBJECT = _union(SYMMETRIC, "algorithm")  # §11.1.7: a storage parent's symmetric key; NULL for an AK
TPMT_RSA_SCHEME = _union(RSA_SCHEMES)  # §11.2.4.2
TPMT_ECC_SCHEME = _union(ECC_SCHEMES)  # §11.2.5.6; ECDAA also carries its commit count (§11.2.3.2)
TPMT_KDF_SCHEME = _union(KDF_SCHEMES)  # §11.2.3.3
TPMS_RSA_PARMS = cs.Struct(  # §12.2.3.5; exponent 0 means 2^16+1
    "symmetric" / TPMT_SYM_DEF_OBJECT,
    "scheme" / TPMT_RSA_SCHEME,
    "keyBits" / cs.Int16ub,
    "exponent" / cs.Int32ub,
)
TPMS_ECC_PARMS = cs.Struct(  # §12.2.3.6
    "symmetric" / TPMT_SYM_DEF_OBJECT,
    "scheme" / TPMT_ECC_SCHEME,
    "curveID" / cs.Int16ub,  # TPM_ECC_CURVE §6.4
    "kdf" / TPMT_KDF_SCHEME,
)
TPMS_ECC_POINT = cs.Struct("x" / TPM2B_ECC_PARAMETER, "y" / TPM2B_ECC_PARAMETER)  # §11.2.5.2

TPMA_OBJECT = cs.FlagsEnum(  # §8.3.2: the attributes that make a key an AK (restricted sign, fixedTPM, ...)
    cs.Int32ub,
    fixedTPM=1 << 1,
    stClear=1 << 2,
    fixedParent=1 << 4,
    sensitiveDataOrigin=1 << 5,
    userWithAuth=1 << 6,
    adminWithPolicy=1 << 7,
    noDA=1 << 10,
    encryptedDuplication=1 << 11,
    restricted=1 << 16,
    decrypt=1 << 17,
    sign=1 << 18,
    x509sign=1 << 19,
)
_PARAMETERS = dict(zip(KEY_TYPES, (TPMS_RSA_PARMS, TPMS_ECC_PARMS), strict=True))
TPMT_PUBLIC = cs.Struct(  # §12.2.4, for the two key types an AK can have
    "type" / _tag(_PARAMETERS),
    "nameAlg" / cs.Int16ub,
    "objectAttributes" / TPMA_OBJECT,
    "authPolicy" / TPM2B_DIGEST,
    "parameters" / cs.Switch(cs.this.type, _PARAMETERS),
    "unique" / cs.Switch(cs.this.type, {TpmAlg.RSA: TPM2B_PUBLIC_KEY_RSA, TpmAlg.ECC: TPMS_ECC_POINT}),
)
TPM2B_PUBLIC = cs.Struct(  # §12.2.5: the size covers exactly one TPMT_PUBLIC
    "publicArea" / cs.Prefixed(cs.Int16ub, TPMT_PUBLIC),
    cs.Terminated,
)


def parse(struct: cs.Construct, data: bytes, structure: str) -> Any:
    """Parse a whole TPM buffer: trailing bytes, a short buffer or an unknown union tag name the field."""
    return region(data).parse(struct, structure)


def build_struct(struct: cs.Construct, obj: Any, structure: str) -> bytes:
    """Build a TPM structure (a value that does not fit is a FormatError naming the field)."""
    return build(struct, obj, structure)
