"""sld.formats.quote (the verifier's int.from_bytes reader) reads what sld.formats.tpm2 (the construct
declarations, the reference) reads, field for field, and refuses what it refuses.

Real TPM output is held to both in tests/swtpm/test_tpm2_formats.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sld.errors import FormatError
from sld.formats import quote, tpm2
from sld.formats.tpm2_names import TpmAlg, TpmSt
from tests.quotes import same_attest, same_public, same_signature
from tests.unit.test_tpm2 import ecc_public, quote_attest, rsa_public


def refuse_alike(data: bytes, struct: Any, reader: Any, name: str) -> None:
    """Every truncation and one trailing byte: both raise a FormatError, the reader naming a field."""
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            tpm2.parse(struct, data[:cut], name)
        with pytest.raises(FormatError) as err:
            reader(data[:cut])
        assert err.value.structure in (name, "TPMT_PUBLIC") and err.value.field
    with pytest.raises(FormatError):
        tpm2.parse(struct, data + b"\0", name)
    with pytest.raises(FormatError, match="after the structure"):
        reader(data + b"\0")


selections = st.lists(st.tuples(st.sampled_from([TpmAlg.SHA1, TpmAlg.SHA256, TpmAlg.SHA384]),
                                st.binary(min_size=0, max_size=4)), max_size=4)


@given(nonce=st.binary(max_size=64), clock=st.integers(0, 2**64 - 1), reset=st.integers(0, 2**32 - 1),
       sel=selections, digest=st.binary(max_size=64), magic=st.integers(0, 2**32 - 1))
def test_attest_fields_agree(nonce: bytes, clock: int, reset: int, sel: list[tuple[int, bytes]], digest: bytes,
                             magic: int) -> None:
    obj = quote_attest(nonce)
    obj["magic"] = magic
    obj["clockInfo"] |= {"clock": clock, "resetCount": reset}
    obj["attested"] = {"pcrSelect": {"pcrSelections": [{"hash": h, "pcrSelect": b} for h, b in sel]},
                       "pcrDigest": {"buffer": digest}}
    same_attest(tpm2.build_struct(tpm2.TPMS_ATTEST, obj, "TPMS_ATTEST"))


def test_other_attest_kinds_are_read_up_to_the_union() -> None:
    obj = {**quote_attest(), "type": TpmSt.ATTEST_CERTIFY, "attested": bytes(70)}
    same_attest(tpm2.build_struct(tpm2.TPMS_ATTEST, obj, "TPMS_ATTEST"))


def test_attest_refusals_agree() -> None:
    refuse_alike(tpm2.build_struct(tpm2.TPMS_ATTEST, quote_attest(), "TPMS_ATTEST"), tpm2.TPMS_ATTEST,
                 quote.read_attest, "TPMS_ATTEST")


@given(st.sampled_from([TpmAlg.RSASSA, TpmAlg.RSAPSS, TpmAlg.ECDSA]), st.binary(max_size=300),
       st.binary(max_size=40), st.binary(max_size=40))
def test_signature_fields_agree(alg: TpmAlg, sig: bytes, r: bytes, s: bytes) -> None:
    body: dict[str, Any] = ({"hash": TpmAlg.SHA256, "signatureR": {"buffer": r}, "signatureS": {"buffer": s}}
                            if alg == TpmAlg.ECDSA else {"hash": TpmAlg.SHA256, "sig": {"buffer": sig}})
    data = tpm2.build_struct(tpm2.TPMT_SIGNATURE, {"sigAlg": alg, "signature": body}, "TPMT_SIGNATURE")
    same_signature(data)


def test_signature_refusals_agree() -> None:
    data = tpm2.build_struct(tpm2.TPMT_SIGNATURE, {"sigAlg": TpmAlg.ECDSA, "signature": {
        "hash": TpmAlg.SHA256, "signatureR": {"buffer": b"\1" * 32}, "signatureS": {"buffer": b"\2" * 32}}}, "sig")
    refuse_alike(data, tpm2.TPMT_SIGNATURE, quote.read_signature, "TPMT_SIGNATURE")
    with pytest.raises(FormatError) as err:
        quote.read_signature(b"\x00\x05" + data[2:])  # HMAC: no AK signs with it
    assert err.value.field == "sigAlg"


@pytest.mark.parametrize("public", [rsa_public(), ecc_public()], ids=["rsa", "ecc"])
def test_public_fields_and_refusals_agree(public: dict[str, Any]) -> None:
    data = tpm2.build_struct(tpm2.TPM2B_PUBLIC, public, "TPM2B_PUBLIC")
    same_public(data)
    refuse_alike(data, tpm2.TPM2B_PUBLIC, quote.read_public, "TPM2B_PUBLIC")
