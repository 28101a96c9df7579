"""The verifier's construct-free reader (sld.formats.quote) compared with the construct declarations
(sld.formats.tpm2), field by field: used by tests/unit/test_quote_reader.py, the swtpm tier and the
``quote`` fuzz target (fuzz/targets.py)."""

from __future__ import annotations

from sld.formats import quote, tpm2
from sld.formats.tpm2_names import TpmAlg, TpmSt


def same_attest(data: bytes) -> None:
    ref = tpm2.parse(tpm2.TPMS_ATTEST, data, "TPMS_ATTEST")
    fast = quote.read_attest(data)
    assert (fast.magic, fast.type, fast.qualified_signer, fast.extra_data) == (
        ref.magic, ref.type, ref.qualifiedSigner.name, ref.extraData.buffer)
    clock = ref.clockInfo
    assert (fast.clock, fast.reset_count, fast.restart_count, fast.safe, fast.firmware_version) == (
        clock.clock, clock.resetCount, clock.restartCount, clock.safe, ref.firmwareVersion)
    if ref.type == TpmSt.ATTEST_QUOTE:
        assert fast.selections == tuple((s.hash, s.pcrSelect) for s in ref.attested.pcrSelect.pcrSelections)
        assert fast.pcr_digest == ref.attested.pcrDigest.buffer


def same_signature(data: bytes) -> None:
    ref = tpm2.parse(tpm2.TPMT_SIGNATURE, data, "TPMT_SIGNATURE")
    fast = quote.read_signature(data)
    assert (fast.sig_alg, fast.hash) == (ref.sigAlg, ref.signature.hash)
    if ref.sigAlg == TpmAlg.ECDSA:
        assert (fast.r, fast.s) == (ref.signature.signatureR.buffer, ref.signature.signatureS.buffer)
    else:
        assert fast.sig == ref.signature.sig.buffer


def same_public(data: bytes) -> None:
    ref = tpm2.parse(tpm2.TPM2B_PUBLIC, data, "TPM2B_PUBLIC").publicArea
    fast = quote.read_public(data)
    assert fast.area == data[2:]
    attributes = int.from_bytes(tpm2.TPMA_OBJECT.build(ref.objectAttributes), "big")
    declared = sum(tpm2.TPMA_OBJECT.flags.values())  # the FlagsEnum keeps only the bits it names
    assert (fast.type, fast.name_alg, fast.attributes & declared) == (ref.type, ref.nameAlg, attributes)
    assert fast.scheme == ref.parameters.scheme.scheme
    assert fast.scheme_hash == ref.parameters.scheme.details.get("hashAlg", 0)
    if ref.type == TpmAlg.RSA:
        assert fast.unique == (ref.unique.buffer,)
        assert fast.exponent == (ref.parameters.exponent or 65537)
    else:
        assert fast.unique == (ref.unique.x.buffer, ref.unique.y.buffer) and fast.curve == ref.parameters.curveID


def agree(data: bytes) -> None:
    """The same bytes read as each of the three structures: both refuse them (a FormatError) or both read
    the same fields. Raises AssertionError where they part."""
    from sld.errors import FormatError

    for struct, name, same in ((tpm2.TPMS_ATTEST, "TPMS_ATTEST", same_attest),
                               (tpm2.TPMT_SIGNATURE, "TPMT_SIGNATURE", same_signature),
                               (tpm2.TPM2B_PUBLIC, "TPM2B_PUBLIC", same_public)):
        try:
            tpm2.parse(struct, data, name)
        except FormatError:
            reader = {"TPMS_ATTEST": quote.read_attest, "TPMT_SIGNATURE": quote.read_signature,
                      "TPM2B_PUBLIC": quote.read_public}[name]
            try:
                reader(data)
            except FormatError:
                continue
            raise AssertionError(f"the reader took a {name} the declaration refuses: {data.hex()}") from None
        same(data)
