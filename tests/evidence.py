"""Evidence files made the way docs/evidence.md lays them out, from a real TPM and the simulator's log.

The quotes come from tpm2-tools (tpm2_createak, tpm2_quote) against the swtpm ``sld sim up`` leaves
launched, one quote per bank; the DRTM log is the simulator's securityfs copy. So the verifier is
tested on what a TPM really signed, independently of sld's own attest code.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from tests.tpm2tools import Ak, Tools

DRTM = "17,18,19,20,21,22"


def make(tools: Tools, ak: Ak, log: bytes, nonce: bytes, banks: tuple[str, ...] = ("sha1", "sha256"),
         label: str = "quote") -> dict[str, Any]:
    """One evidence object: a quote per bank of ``banks``, the AK and the log."""
    quotes = []
    for bank in banks:
        q = tools.quote(ak, f"{bank}:{DRTM}", nonce, label=f"{label}-{bank}")
        quotes.append({"bank": bank, "attest": base64.b64encode(q.attest.read_bytes()).decode(),
                       "signature": base64.b64encode(q.signature.read_bytes()).decode(),
                       "pcrs": {str(pcr): value for pcr, value in q.values[bank].items()}})
    return {"schema": 1, "kind": "evidence", "nonce": nonce.hex(),
            "ak": {"pem": ak.pem.read_text(), "name": ak.name.read_bytes().hex(),
                   "public": base64.b64encode(ak.public.read_bytes()).decode()},
            "quotes": quotes, "drtm_log": base64.b64encode(log).decode(),
            "platform": {"unauthenticated": True}, "verdict": {"advisory": True}, "banks": list(banks)}


def write(path: Path, evidence: dict[str, Any]) -> Path:
    path.write_text(json.dumps(evidence))
    return path


# ---- synthetic evidence (unit tier): the same layout, signed in-process by a key cryptography makes ----


class SoftAk:
    """An AK stand-in for the unit tier: a real key pair (cryptography/OpenSSL) and its TPM2B_PUBLIC."""

    def __init__(self, key: str = "rsa") -> None:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        self.kind = key
        self.private: Any = (rsa.generate_private_key(65537, 2048) if key == "rsa"
                             else ec.generate_private_key(ec.SECP256R1()))

    def pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def public(self, attributes: dict[str, bool] | None = None) -> bytes:
        from sld.formats import tpm2
        from sld.formats.tpm2_names import TpmAlg, TpmEccCurve

        numbers = self.private.public_key().public_numbers()
        area: dict[str, Any] = {
            "nameAlg": TpmAlg.SHA256, "authPolicy": {"buffer": b""},
            "objectAttributes": attributes or {"fixedTPM": True, "fixedParent": True, "sensitiveDataOrigin": True,
                                               "userWithAuth": True, "restricted": True, "sign": True}}
        null = {"algorithm": TpmAlg.NULL, "details": {}}
        if self.kind == "rsa":
            area |= {"type": TpmAlg.RSA, "unique": {"buffer": numbers.n.to_bytes(256, "big")},
                     "parameters": {"symmetric": null, "scheme": {"scheme": TpmAlg.RSASSA, "details": {"hashAlg": 11}},
                                    "keyBits": 2048, "exponent": 0}}
        else:
            area |= {"type": TpmAlg.ECC, "unique": {"x": {"buffer": numbers.x.to_bytes(32, "big")},
                                                    "y": {"buffer": numbers.y.to_bytes(32, "big")}},
                     "parameters": {"symmetric": null, "scheme": {"scheme": TpmAlg.ECDSA, "details": {"hashAlg": 11}},
                                    "curveID": TpmEccCurve.NIST_P256, "kdf": {"scheme": TpmAlg.NULL, "details": {}}}}
        return tpm2.build_struct(tpm2.TPM2B_PUBLIC, {"publicArea": area}, "TPM2B_PUBLIC")

    def signature(self, message: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

        from sld.formats import tpm2
        from sld.formats.tpm2_names import TpmAlg

        if self.kind == "rsa":
            sig = self.private.sign(message, padding.PKCS1v15(), hashes.SHA256())
            body: dict[str, Any] = {"hash": TpmAlg.SHA256, "sig": {"buffer": sig}}
            return tpm2.build_struct(tpm2.TPMT_SIGNATURE, {"sigAlg": TpmAlg.RSASSA, "signature": body}, "sig")
        r, s = utils.decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
        body = {"hash": TpmAlg.SHA256, "signatureR": {"buffer": r.to_bytes(32, "big")},
                "signatureS": {"buffer": s.to_bytes(32, "big")}}
        return tpm2.build_struct(tpm2.TPMT_SIGNATURE, {"sigAlg": TpmAlg.ECDSA, "signature": body}, "sig")


def synthetic(ak: SoftAk, nonce: bytes, *, banks: tuple[str, ...] = ("sha1", "sha256"), window_events: int = 5,
              clock: int = 1000, reset: int = 3, restart: int = 0, safe: int = 1,
              capped: tuple[str, ...] = ()) -> dict[str, Any]:
    """Evidence for the simulator's clean launch of ``banks``, quoted by ``ak`` as a TPM would (one quote
    per bank); ``capped`` banks get the cap value 0x01.. as the MLE digest, as a SINIT that cannot use them."""
    import hashlib
    from dataclasses import replace

    from sld.formats import tpm2
    from sld.formats.eventlog import parse_log
    from sld.formats.names import ALG_ID
    from sld.formats.quote import object_name, pcr_bitmap
    from sld.formats.tcg import NewEvent, build_crypto_agile
    from sld.formats.tpm2_names import TPM_GENERATED_VALUE, TpmSt
    from sld.replay import DRTM_PCRS, replay
    from sld.sim.scenarios import PlatformSpec, events_for

    events = events_for(PlatformSpec(banks=banks, window_events=window_events), "v16")
    events = [replace(e, digests={b: b"\x01" + bytes(len(d) - 1) if b in capped and e.type == 0x404 else d
                                  for b, d in e.digests.items()}) for e in events]
    log = build_crypto_agile(banks, [NewEvent(e.pcr, e.type, e.digests, e.data) for e in events])
    values = replay(parse_log(log), pcrs=DRTM_PCRS).values
    public = ak.public()
    quotes = []
    for bank in banks:
        attest = tpm2.build_struct(tpm2.TPMS_ATTEST, {
            "magic": TPM_GENERATED_VALUE, "type": TpmSt.ATTEST_QUOTE,
            "qualifiedSigner": {"name": object_name(public[2:])}, "extraData": {"buffer": nonce},
            "clockInfo": {"clock": clock, "resetCount": reset, "restartCount": restart, "safe": safe},
            "firmwareVersion": 0x2019102300163636,
            "attested": {"pcrSelect": {"pcrSelections": [{"hash": ALG_ID[bank], "pcrSelect": pcr_bitmap(DRTM_PCRS)}]},
                         "pcrDigest": {"buffer": hashlib.sha256(b"".join(values[bank][p] for p in DRTM_PCRS))
                                       .digest()}}}, "TPMS_ATTEST")
        quotes.append({"bank": bank, "attest": base64.b64encode(attest).decode(),
                       "signature": base64.b64encode(ak.signature(attest)).decode(),
                       "pcrs": {str(p): values[bank][p].hex() for p in DRTM_PCRS}})
    return {"schema": 1, "kind": "evidence", "nonce": nonce.hex(),
            "ak": {"pem": ak.pem(), "name": object_name(public[2:]).hex(), "public": base64.b64encode(public).decode()},
            "quotes": quotes, "drtm_log": base64.b64encode(log).decode(), "platform": {}, "verdict": {},
            "banks": list(banks)}
