"""Test PKI made by the openssl command: a CA, a server certificate for an IP address and a client
certificate, as an operator would make them for a fleet's Prometheus (mTLS)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # signed by a CA the server does not trust
    stranger_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _ca(out: Path, name: str) -> tuple[Path, Path]:
    cert, key = out / f"{name}.pem", out / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
             "-subj", f"/CN={name}", "-keyout", key, "-out", cert)
    return cert, key


def _leaf(out: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    cert, key, csr, conf = (out / f"{name}{s}" for s in (".pem", ".key", ".csr", ".ext"))
    conf.write_text(ext + "\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
             "-keyout", key, "-out", csr)
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-days", "1",
             "-extfile", conf, "-out", cert)
    return cert, key


def make_pki(out: Path, *addresses: str) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command (Debian openssl) is absent")
    ca, stranger_ca = _ca(out, "ca"), _ca(out, "stranger-ca")
    san = ",".join(f"IP:{a}" for a in addresses)
    server = _leaf(out, "server", ca, f"subjectAltName={san}\nextendedKeyUsage=serverAuth")
    client = _leaf(out, "prometheus", ca, "extendedKeyUsage=clientAuth")
    stranger = _leaf(out, "stranger", stranger_ca, "extendedKeyUsage=clientAuth")
    return Pki(ca[0], *server, *client, *stranger)
