"""What a real TPM returns (swtpm, through tpm2-tools) parses with sld.formats.tpm2 and builds back byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import construct as cs
import pytest

from sld.formats import tpm2
from sld.formats.names import ALG_ID
from sld.formats.quote import object_name, selected_pcrs
from sld.formats.tpm2_names import TPM_GENERATED_VALUE, TpmAlg, TpmEccCurve, TpmSt
from sld.sim.swtpm import Swtpm
from tests.quotes import same_attest, same_public, same_signature
from tests.tpm2tools import Tools, missing_tools

if missing_tools():
    pytest.skip(f"tpm2-tools (Debian tpm2-tools) lacks {', '.join(missing_tools())}", allow_module_level=True)

NONCE = bytes.fromhex("5eed") * 10
SELECTION = "sha1:17,18,19,20,21,22+sha256:17,18,19,20,21,22"


def same_bytes(struct: cs.Construct, data: bytes, structure: str) -> Any:
    parsed = tpm2.parse(struct, data, structure)
    assert tpm2.build_struct(struct, parsed, structure) == data
    return parsed


@pytest.mark.parametrize(("key", "sig_alg"), [("rsa", TpmAlg.RSASSA), ("ecc", TpmAlg.ECDSA)])
def test_tpm2_quote_outputs_round_trip(swtpm: Swtpm, tmp_path: Path, key: str, sig_alg: TpmAlg) -> None:
    tools = Tools(swtpm.tcti, tmp_path)
    ak = tools.create_ak(key)
    quote = tools.quote(ak, SELECTION, NONCE)

    attest = same_bytes(tpm2.TPMS_ATTEST, quote.attest.read_bytes(), "TPMS_ATTEST")
    assert attest.magic == TPM_GENERATED_VALUE and attest.type == TpmSt.ATTEST_QUOTE
    assert attest.extraData.buffer == NONCE
    selections = attest.attested.pcrSelect.pcrSelections
    assert [(s.hash, selected_pcrs(s.pcrSelect)) for s in selections] == [
        (ALG_ID["sha1"], tuple(range(17, 23))), (ALG_ID["sha256"], tuple(range(17, 23)))]

    signature = same_bytes(tpm2.TPMT_SIGNATURE, quote.signature.read_bytes(), "TPMT_SIGNATURE")
    assert signature.sigAlg == sig_alg and signature.signature.hash == TpmAlg.SHA256

    public = same_bytes(tpm2.TPM2B_PUBLIC, ak.public.read_bytes(), "TPM2B_PUBLIC").publicArea
    assert public.type == {"rsa": TpmAlg.RSA, "ecc": TpmAlg.ECC}[key]
    assert public.objectAttributes.restricted and public.objectAttributes.sign and public.objectAttributes.fixedTPM
    if key == "ecc":
        assert public.parameters.curveID == TpmEccCurve.NIST_P256
    assert object_name(ak.public.read_bytes()[2:]) == ak.name.read_bytes()
    same_attest(quote.attest.read_bytes())  # the verifier's reader reads the same fields
    same_signature(quote.signature.read_bytes())
    same_public(ak.public.read_bytes())
