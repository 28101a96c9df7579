"""The names of TPM 2.0 Library Part 2 ("Structures"): the ids inside quotes, keys and signatures.

Apart from sld.formats.names on purpose: only the remote-attestation side (sld attest, sld ak, sld verify
--evidence, their construct declarations in sld.formats.tpm2 and sld.formats.quote) speaks them, and
their IntEnums cost a local verification, which reads PCRs and nothing TPM 2.0 signs, ~0.5 ms to build.
"""

from __future__ import annotations

from enum import IntEnum

TPM_GENERATED_VALUE = 0xFF544347  # §6.2: "\xffTCG", the first bytes of every structure the TPM signs


class TpmAlg(IntEnum):
    """TPM_ALG_ID (§6.3; TCG Algorithm Registry): the ids of quote, key and signature structures."""

    RSA = 0x0001
    SHA1 = 0x0004
    HMAC = 0x0005
    AES = 0x0006
    MGF1 = 0x0007
    KEYEDHASH = 0x0008
    SHA256 = 0x000B
    SHA384 = 0x000C
    SHA512 = 0x000D
    NULL = 0x0010
    SM3_256 = 0x0012
    SM4 = 0x0013
    RSASSA = 0x0014
    RSAES = 0x0015
    RSAPSS = 0x0016
    OAEP = 0x0017
    ECDSA = 0x0018
    ECDH = 0x0019
    ECDAA = 0x001A
    SM2 = 0x001B
    ECSCHNORR = 0x001C
    ECMQV = 0x001D
    KDF1_SP800_56A = 0x0020
    KDF2 = 0x0021
    KDF1_SP800_108 = 0x0022
    ECC = 0x0023
    SYMCIPHER = 0x0025
    CAMELLIA = 0x0026
    CFB = 0x0043


class TpmSt(IntEnum):
    """TPM_ST (§6.9): the tag that says which TPMS_ATTEST a TPM signed."""

    ATTEST_NV = 0x8014
    ATTEST_COMMAND_AUDIT = 0x8015
    ATTEST_SESSION_AUDIT = 0x8016
    ATTEST_CERTIFY = 0x8017
    ATTEST_QUOTE = 0x8018
    ATTEST_TIME = 0x8019
    ATTEST_CREATION = 0x801A
    ATTEST_NV_DIGEST = 0x801C


class TpmEccCurve(IntEnum):
    """TPM_ECC_CURVE (§6.4): the curves sld verifies signatures on."""

    NIST_P256 = 0x0003
    NIST_P384 = 0x0004
