"""tpm2-tools driven against a swtpm: the independent maker of AKs and quotes, and the quote referee.

The swtpm TCTI has no resource manager, so every transient object and session a tool leaves loaded
is flushed after it (a TPM holds only three), as tpm2-tools' own integration tests do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("tpm2_createek", "tpm2_createak", "tpm2_quote", "tpm2_checkquote", "tpm2_readpublic", "tpm2_flushcontext")


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


@dataclass(frozen=True)
class Ak:
    """An AK made by tpm2_createak: its context, TPM2B_PUBLIC (tss format), PEM and Name files."""

    ctx: Path
    public: Path
    pem: Path
    name: Path


@dataclass(frozen=True)
class Quote:
    """tpm2_quote's outputs: the TPMS_ATTEST (-m), the TPMT_SIGNATURE (-s) and the PCR blob (-o)."""

    attest: Path
    signature: Path
    pcrs: Path


class Tools:
    """tpm2-tools commands pointed at one TPM through ``TPM2TOOLS_TCTI``, writing into ``workdir``."""

    def __init__(self, tcti: str, workdir: Path) -> None:
        self.env = {**os.environ, "TPM2TOOLS_TCTI": tcti}
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(args), env=self.env, cwd=self.dir, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def flush(self) -> None:
        self.run("tpm2_flushcontext", "-t")
        self.run("tpm2_flushcontext", "-s")

    def create_ak(self, key: str = "rsa", label: str = "ak") -> Ak:
        """An EK (RSA template) and under it a restricted signing AK: ``rsa`` (RSASSA) or ``ecc`` (ECDSA P-256)."""
        scheme = {"rsa": "rsassa", "ecc": "ecdsa"}[key]
        ak = Ak(*(self.dir / f"{label}.{ext}" for ext in ("ctx", "pub", "pem", "name")))
        self.run("tpm2_createek", "-c", f"{label}-ek.ctx", "-G", "rsa", "-u", f"{label}-ek.pub")
        self.run("tpm2_createak", "-C", f"{label}-ek.ctx", "-c", str(ak.ctx), "-G", key, "-g", "sha256", "-s",
                 scheme, "-u", str(ak.public), "-f", "tss", "-n", str(ak.name))
        self.flush()
        self.run("tpm2_readpublic", "-c", str(ak.ctx), "-o", str(ak.pem), "-f", "pem")
        self.flush()
        return ak

    def quote(self, ak: Ak, selection: str, nonce: bytes, label: str = "quote") -> Quote:
        """tpm2_quote of ``selection`` (tpm2-tools syntax, e.g. ``sha256:17,18``) with qualifying data ``nonce``."""
        q = Quote(*(self.dir / f"{label}.{ext}" for ext in ("attest", "sig", "pcrs")))
        self.run("tpm2_quote", "-c", str(ak.ctx), "-l", selection, "-q", nonce.hex(), "-m", str(q.attest),
                 "-s", str(q.signature), "-o", str(q.pcrs), "-g", "sha256")
        self.flush()
        return q

    def checkquote(self, pem: Path, quote: Quote, nonce: bytes) -> subprocess.CompletedProcess[str]:
        """The referee: tpm2_checkquote's verdict on a quote (signature, nonce and the PCR digest)."""
        return self.run("tpm2_checkquote", "-u", str(pem), "-m", str(quote.attest), "-s", str(quote.signature),
                        "-f", str(quote.pcrs), "-g", "sha256", "-q", nonce.hex(), check=False)
