"""TPM return codes: sld decodes them as tpm2-pytss does, and classifies each kind once."""

from __future__ import annotations

import pytest

from sld.tss import Tss2Error, classify

SAMPLE = [0x907, 0x922, 0x908, 0x90A, 0x9A2, 0x1C4, 0x184, 0x2C4, 0x98E, 0x101, 0xA000A, 0x70001, 0x80006,
          0x9000B, 0x5000B, 0x10902, 0xA0080]


@pytest.mark.parametrize("rc", SAMPLE)
def test_error_number_equals_tpm2_pytss(rc: int) -> None:
    from tpm2_pytss import TSS2_Exception

    assert Tss2Error(rc, "x").error == TSS2_Exception(rc).error


@pytest.mark.parametrize(("rc", "kind"), [
    (0x907, "locality"), (0x922, "retry"), (0x908, "retry"), (0x90A, "retry"),
    (0xA000A, "unavailable"), (0x70001, "unavailable"), (0x80006, "unavailable"), (0x9000B, "unavailable"),
    (0x9A2, "command"), (0x1C4, "command"), (0x10922, "command"),  # a RETRY from another layer is no TPM answer
])
def test_classification(rc: int, kind: str) -> None:
    err = classify(Tss2Error(rc, "decoded"), "TPM2_PCR_Read")
    assert (err.kind, err.rc) == (kind, rc) and "TPM2_PCR_Read: " in str(err)
    assert classify(OSError(104, "reset"), "TPM2_PCR_Read").kind == "unavailable"
