"""TPM 2.0 quote structures: every declaration builds what it parses and parses what it builds.

Real TPM output (tpm2_quote / tpm2_createak against swtpm) is round-tripped in
tests/swtpm/test_tpm2_formats.py; here the declarations are held to the Part 2 layouts.
"""

from __future__ import annotations

import hashlib
from typing import Any

import construct as cs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sld.errors import FormatError
from sld.formats import quote, tpm2
from sld.formats.heap import plain
from sld.formats.tpm2_names import TPM_GENERATED_VALUE, TpmAlg, TpmEccCurve, TpmSt
from tests.roundtrip import assert_declaration_round_trip


def round_trip(struct: cs.Construct, obj: dict[str, Any], structure: str) -> bytes:
    """``obj`` builds bytes that make the one round trip of every format test (parse, build, size), and
    parse to what construct itself parses them to."""
    data = tpm2.build_struct(struct, obj, structure)
    parsed = plain(tpm2.parse(struct, data, structure))
    assert_declaration_round_trip(struct, data, parsed)
    assert parsed == plain(struct.parse(struct.build(obj)))
    return data


def quote_attest(nonce: bytes = b"n" * 16, pcrs: tuple[int, ...] = tuple(range(17, 23))) -> dict[str, Any]:
    return {
        "magic": TPM_GENERATED_VALUE,
        "type": TpmSt.ATTEST_QUOTE,
        "qualifiedSigner": {"name": b"\x00\x0b" + bytes(32)},
        "extraData": {"buffer": nonce},
        "clockInfo": {"clock": 8112, "resetCount": 1, "restartCount": 0, "safe": 1},
        "firmwareVersion": 0x2019102300163636,
        "attested": {
            "pcrSelect": {"pcrSelections": [{"hash": TpmAlg.SHA256, "pcrSelect": quote.pcr_bitmap(pcrs)}]},
            "pcrDigest": {"buffer": hashlib.sha256(b"pcrs").digest()},
        },
    }


def test_quote_attest_layout() -> None:
    data = round_trip(tpm2.TPMS_ATTEST, quote_attest(), "TPMS_ATTEST")
    # magic, type, TPM2B_NAME(34), TPM2B_DATA(16), clock info (17), firmware (8), one selection (4+6), digest (34)
    assert len(data) == 4 + 2 + 36 + 18 + 17 + 8 + 10 + 34
    assert data[:6] == bytes.fromhex("ff5443478018")
    assert data[-40:-34] == bytes.fromhex("000b0300007e")  # sha256, 3 bytes of bitmap: PCR17-22


def test_other_attest_kinds_stay_opaque() -> None:
    obj = {**quote_attest(), "type": TpmSt.ATTEST_CERTIFY, "attested": b"\x00\x22" + bytes(34) * 2}
    parsed = tpm2.parse(tpm2.TPMS_ATTEST, tpm2.build_struct(tpm2.TPMS_ATTEST, obj, "TPMS_ATTEST"), "TPMS_ATTEST")
    assert parsed.type == TpmSt.ATTEST_CERTIFY and parsed.attested == obj["attested"]


def test_a_forged_magic_still_parses_for_the_verifier_to_name() -> None:
    data = tpm2.build_struct(tpm2.TPMS_ATTEST, {**quote_attest(), "magic": 0x12345678}, "TPMS_ATTEST")
    assert tpm2.parse(tpm2.TPMS_ATTEST, data, "TPMS_ATTEST").magic == 0x12345678


@pytest.mark.parametrize("cut", [3, 10, 40, 60, 80, 100, 128])
def test_truncated_attest_names_the_field(cut: int) -> None:
    data = tpm2.build_struct(tpm2.TPMS_ATTEST, quote_attest(), "TPMS_ATTEST")
    with pytest.raises(FormatError, match="truncated") as err:
        tpm2.parse(tpm2.TPMS_ATTEST, data[:cut], "TPMS_ATTEST")
    assert err.value.structure == "TPMS_ATTEST" and err.value.field


def test_trailing_bytes_are_an_error() -> None:
    data = tpm2.build_struct(tpm2.TPMS_ATTEST, quote_attest(), "TPMS_ATTEST")
    with pytest.raises(FormatError, match="end of stream"):
        tpm2.parse(tpm2.TPMS_ATTEST, data + b"\0", "TPMS_ATTEST")


@pytest.mark.parametrize(
    "signature",
    [
        {"sigAlg": TpmAlg.RSASSA, "signature": {"hash": TpmAlg.SHA256, "sig": {"buffer": bytes(range(256))}}},
        {"sigAlg": TpmAlg.RSAPSS, "signature": {"hash": TpmAlg.SHA256, "sig": {"buffer": bytes(256)}}},
        {"sigAlg": TpmAlg.ECDSA, "signature": {"hash": TpmAlg.SHA256, "signatureR": {"buffer": b"\x01" * 32},
                                                "signatureS": {"buffer": b"\x02" * 32}}},
    ],
    ids=["rsassa", "rsapss", "ecdsa"],
)
def test_signature_round_trip(signature: dict[str, Any]) -> None:
    data = round_trip(tpm2.TPMT_SIGNATURE, signature, "TPMT_SIGNATURE")
    assert data[:4] == signature["sigAlg"].to_bytes(2, "big") + b"\x00\x0b"


def test_unknown_signature_scheme_names_sig_alg() -> None:
    with pytest.raises(FormatError) as err:
        tpm2.parse(tpm2.TPMT_SIGNATURE, b"\x00\x05\x00\x0b" + bytes(32), "TPMT_SIGNATURE")
    assert err.value.field == "sigAlg"


AK_ATTRIBUTES = {"fixedTPM": True, "fixedParent": True, "sensitiveDataOrigin": True, "userWithAuth": True,
                 "restricted": True, "sign": True}
NO_SYMMETRIC = {"algorithm": TpmAlg.NULL, "details": {}}


def rsa_public() -> dict[str, Any]:
    return {"publicArea": {
        "type": TpmAlg.RSA, "nameAlg": TpmAlg.SHA256, "objectAttributes": AK_ATTRIBUTES, "authPolicy": {"buffer": b""},
        "parameters": {"symmetric": NO_SYMMETRIC, "scheme": {"scheme": TpmAlg.RSASSA, "details": {"hashAlg": 0xB}},
                       "keyBits": 2048, "exponent": 0},
        "unique": {"buffer": bytes(range(256))}}}


def ecc_public() -> dict[str, Any]:
    return {"publicArea": {
        "type": TpmAlg.ECC, "nameAlg": TpmAlg.SHA256, "objectAttributes": AK_ATTRIBUTES, "authPolicy": {"buffer": b""},
        "parameters": {"symmetric": NO_SYMMETRIC, "scheme": {"scheme": TpmAlg.ECDSA, "details": {"hashAlg": 0xB}},
                       "curveID": TpmEccCurve.NIST_P256, "kdf": {"scheme": TpmAlg.NULL, "details": {}}},
        "unique": {"x": {"buffer": b"\x03" * 32}, "y": {"buffer": b"\x04" * 32}}}}


@pytest.mark.parametrize("public", [rsa_public(), ecc_public()], ids=["rsa", "ecc"])
def test_public_round_trip_and_name(public: dict[str, Any]) -> None:
    data = round_trip(tpm2.TPM2B_PUBLIC, public, "TPM2B_PUBLIC")
    assert int.from_bytes(data[:2], "big") == len(data) - 2
    assert data[6:10] == bytes.fromhex("00050072")  # TPMA_OBJECT of tpm2_createak's AK template
    assert quote.object_name(data[2:]) == b"\x00\x0b" + hashlib.sha256(data[2:]).digest()


def test_public_size_must_cover_the_area() -> None:
    data = tpm2.build_struct(tpm2.TPM2B_PUBLIC, rsa_public(), "TPM2B_PUBLIC")
    with pytest.raises(FormatError):
        tpm2.parse(tpm2.TPM2B_PUBLIC, (len(data) - 3).to_bytes(2, "big") + data[2:], "TPM2B_PUBLIC")


def test_unknown_key_type_names_the_field() -> None:
    data = bytearray(tpm2.build_struct(tpm2.TPM2B_PUBLIC, rsa_public(), "TPM2B_PUBLIC"))
    data[2:4] = b"\x00\x08"  # KEYEDHASH: never an AK
    with pytest.raises(FormatError) as err:
        tpm2.parse(tpm2.TPM2B_PUBLIC, bytes(data), "TPM2B_PUBLIC")
    assert err.value.field == "publicArea.type"


def test_name_of_an_unknown_name_alg() -> None:
    with pytest.raises(FormatError, match="nameAlg 0x0099"):
        quote.object_name(b"\x00\x01\x00\x99" + bytes(20))
    if "sm3" not in hashlib.algorithms_available:  # a TCG hash this OpenSSL lacks: refused, not a ValueError
        with pytest.raises(FormatError, match="nameAlg 0x0012 is not a hash sld can compute"):
            quote.object_name(b"\x00\x01\x00\x12" + bytes(20))


@pytest.mark.skipif("sm3" not in hashlib.algorithms_available, reason="this Python's OpenSSL has no sm3")
def test_name_of_an_sm3_256_object() -> None:
    """sm3_256 is OpenSSL's sm3, for a Name as for a PCR bank's replay (one mapping, sld.formats.names)."""
    public = rsa_public()
    public["publicArea"]["nameAlg"] = TpmAlg.SM3_256
    data = tpm2.build_struct(tpm2.TPM2B_PUBLIC, public, "TPM2B_PUBLIC")
    assert quote.object_name(data[2:]) == b"\x00\x12" + hashlib.new("sm3", data[2:]).digest()


@given(st.sets(st.integers(0, 23)))
def test_bitmap_selects_what_it_was_made_of(pcrs: set[int]) -> None:
    bitmap = quote.pcr_bitmap(sorted(pcrs))
    assert quote.selected_pcrs(bitmap) == tuple(sorted(pcrs))
    assert round_trip(tpm2.TPMS_PCR_SELECTION, {"hash": TpmAlg.SHA1, "pcrSelect": bitmap}, "sel")[2] == 3
