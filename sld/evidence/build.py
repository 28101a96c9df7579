"""The evidence object ``sld attest`` writes (docs/evidence.md, schema 1), built from values already read.

Pure: the quotes, the AK's public area, the log bytes and sld's own verdict go in; one JSON-ready dict
comes out. What the TPM signed (``attest``, ``signature``) is carried byte for byte as the TPM returned it;
what the host's software read (``platform``) or decided (``verdict``) is marked as such, because a remote
verifier must never rest a decision on it (issue 14, security notes).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable

from sld.errors import ConfigError, FormatError
from sld.formats.quote import read_public
from sld.formats.tpm2_names import TpmAlg, TpmEccCurve
from sld.vocab import CheckStatus

TYPE_CHECKING = False  # typing costs a cold sld verify --evidence (which checks its nonce here) a tenth
if TYPE_CHECKING:
    from typing import Any

SCHEMA = 1
KIND = "evidence"
MIN_NONCE = 16  # bytes: a verifier's nonce must be unguessable (issue 14)
MAX_NONCE = 64  # TPM2B_DATA holds at most sizeof(TPMT_HA) of the TPM's largest hash (Part 2 §10.4.3)
PLATFORM_NOTE = ("read by the attested host's own software and covered by no TPM signature: context for an "
                 "operator, never a basis for a verdict")
VERDICT_NOTE = ("sld's own result on the attested host, advisory: a verifier recomputes it from the quotes and "
                "the DRTM log")
_CURVES: dict[int, str] = {TpmEccCurve.NIST_P256: "secp256r1"}  # the curve an AK template names


def check_nonce(nonce: bytes, key: str = "nonce") -> bytes:
    """The verifier's nonce, 16..64 bytes: an empty or short one would let old evidence be replayed."""
    if not MIN_NONCE <= len(nonce) <= MAX_NONCE:
        raise ConfigError(f"{len(nonce)} bytes; the verifier's nonce must be {MIN_NONCE}..{MAX_NONCE} bytes", key=key)
    return nonce


def nonce_from_hex(text: str, key: str = "--nonce") -> bytes:
    """``--nonce HEX``: hex digits, then :func:`check_nonce`."""
    try:
        return check_nonce(bytes.fromhex(text), key)
    except ValueError:
        raise ConfigError(f"not hex: {text!r}", key=key) from None


@functools.lru_cache(maxsize=4)
def public_pem(public: bytes) -> str:
    """The SubjectPublicKeyInfo PEM of a TPM2B_PUBLIC RSA or ECC key (RFC 5280; TPM 2.0 Part 2 §12.2.4); the
    daemon's attest requests name the same AK each time, so its PEM is made once."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = read_public(public)
    if key.type == TpmAlg.RSA:
        numbers: Any = rsa.RSAPublicNumbers(key.exponent, int.from_bytes(key.unique[0], "big"))
    else:
        if key.curve not in _CURVES:
            raise FormatError("TPMT_PUBLIC", f"curve 0x{key.curve:04x} is not one sld's AKs use",
                              field="parameters.curveID")
        curve = getattr(ec, _CURVES[key.curve].upper())()
        x, y = (int.from_bytes(c, "big") for c in key.unique)
        numbers = ec.EllipticCurvePublicNumbers(x, y, curve)
    return str(numbers.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo).decode())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _platform(snapshot: Any, verdict: Any) -> dict[str, Any]:
    slrt = snapshot.slrt
    return {
        "authenticated": False,
        "note": PLATFORM_NOTE,
        "source": verdict.source,
        "registers": dict(verdict.registers),
        "layout": verdict.layout,
        "slrt": None if slrt is None else {"address": slrt.address, "layout": slrt.layout,
                                           "entries": [entry.name for entry in slrt.entries]},
        "log_format": verdict.log_format,
        "log_events": verdict.log_events,
        "errors": {stage: str(err) for stage, err in snapshot.errors.items()},
    }


def _verdict(verdict: Any) -> dict[str, Any]:
    return {"advisory": True, "note": VERDICT_NOTE, "result": str(verdict.result), "summary": verdict.summary,
            "failed": [str(c.id) for c in verdict.checks if c.status == CheckStatus.FAIL]}


def evidence(nonce: bytes, ak_public: bytes, ak_name: bytes, ak_handle: int, banks: Iterable[str],
             quotes: Iterable[Any], snapshot: Any, verdict: Any) -> dict[str, Any]:
    """The evidence object: ``quotes`` are sld.ak.Quote, ``snapshot``/``verdict`` those of sld.verify."""
    return {
        "schema": SCHEMA,
        "kind": KIND,
        "nonce": nonce.hex(),
        "ak": {"pem": public_pem(ak_public), "name": ak_name.hex(), "public": _b64(ak_public),
               "handle": f"0x{ak_handle:08x}"},
        "banks": list(banks),
        "quotes": [{"bank": q.bank, "attest": _b64(q.attest), "signature": _b64(q.signature),
                    "pcrs": {str(pcr): value.hex() for pcr, value in sorted(q.pcrs.items())}} for q in quotes],
        "drtm_log": _b64(snapshot.log_data or b""),
        "platform": _platform(snapshot, verdict),
        "verdict": _verdict(verdict),
    }
