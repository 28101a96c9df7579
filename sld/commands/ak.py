"""``sld ak create`` and ``sld ak activate``: the attestation key's enrolment, I/O only (sld.ak does the TPM work)."""

from __future__ import annotations

import argparse
import base64
import sys
from typing import Any

from sld.errors import ConfigError


def _pem(der: bytes, label: str) -> str:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"


def _tpm_and_handle(args: argparse.Namespace) -> tuple[Any, int]:
    """The TPM session and AK handle: options over the configuration's [tpm] and [attest] keys."""
    from sld.config import load
    from sld.tpm import Tpm

    config = load(args.config)
    handle = config.attest.ak_handle if args.handle is None else args.handle
    return Tpm(args.tcti or config.tpm.tcti, timeout=config.tpm.timeout), handle


def run_create(args: argparse.Namespace) -> int:
    """Create and persist the AK; print what a verifier enrols: AK PEM and Name, the EK public keys (RSA, ECC) and
    every EK certificate the TPM holds (NV 0x01C00002, 0x01C0000A, ...)."""
    from sld import ak
    from sld.evidence.build import public_pem
    from sld.report import dump_json

    tpm, handle = _tpm_and_handle(args)
    with tpm:
        info = ak.create(tpm, args.alg, handle, replace=args.replace)
    certificates = [{"index": f"0x{index:08x}", "key": ak.EK_CERT_INDICES[index], "pem": _pem(der, "CERTIFICATE")}
                    for index, der in info.ek_certificates.items()]
    if args.json:
        print(dump_json("ak", {
            "handle": f"0x{info.handle:08x}", "alg": args.alg,
            "ak": {"pem": public_pem(info.public), "name": info.name.hex(),
                   "public": base64.b64encode(info.public).decode()},
            "ek": {**{alg: {"pem": public_pem(public), "public": base64.b64encode(public).decode()}
                      for alg, public in info.ek_public.items()}, "certificates": certificates}}))
        return 0
    print(f"AK persisted at 0x{info.handle:08x} ({args.alg}); name {info.name.hex()}")
    print(public_pem(info.public), end="")
    for alg, label in (("rsa", "RSA 2048, template L-1"), ("ecc", "ECC NIST P-256, template L-2")):
        print(f"EK public key (TCG EK Credential Profile {label}):")
        print(public_pem(info.ek_public[alg]), end="")
    for cert in certificates:
        print(f"EK certificate at NV {cert['index']} ({cert['key']}):")
        print(cert["pem"], end="")
    absent = [f"0x{index:08x}" for index in ak.EK_CERT_INDICES if index not in info.ek_certificates]
    if absent:
        print(f"no EK certificate at NV {', '.join(absent)}")
    return 0


def run_activate(args: argparse.Namespace) -> int:
    """Answer a verifier's TPM2_MakeCredential challenge (tpm2_makecredential's file): print the secret (hex)."""
    from sld import ak
    from sld.formats import tpm2
    from sld.formats.credential import CREDENTIAL_FILE

    try:
        with open(args.credential, "rb") as f:
            data = f.read(1 << 16)
    except OSError as err:
        raise ConfigError(f"cannot read the credential: {err.strerror}", key="--credential",
                          file=args.credential) from None
    challenge = tpm2.parse(CREDENTIAL_FILE, data, "tpm2_makecredential file")
    tpm, handle = _tpm_and_handle(args)
    with tpm:
        secret = ak.activate(tpm, challenge.credentialBlob.credential, challenge.secret.secret, handle)
    sys.stdout.write(secret.hex() + "\n")
    return 0
