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

TOOLS = ("tpm2_createek", "tpm2_createak", "tpm2_quote", "tpm2_checkquote", "tpm2_readpublic", "tpm2_flushcontext",
         "tpm2_createprimary", "tpm2_create", "tpm2_load", "tpm2_sign")


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
    """tpm2_quote's outputs: the TPMS_ATTEST (-m), the TPMT_SIGNATURE (-s), the PCR blob (-o), and the
    PCR values it printed (bank -> PCR -> hex)."""

    attest: Path
    signature: Path
    pcrs: Path
    values: dict[str, dict[int, str]]


def pcr_blob(alg: int, values: dict[int, bytes]) -> bytes:
    """PCR values in tpm2-tools' PCR blob format (tpm2_quote -o; lib/pcr.c writes the structs as they lie
    in memory, little-endian): TPML_PCR_SELECTION with its 16 slots of TPMS_PCR_SELECTION (hash, size,
    4-byte select, padding), the number of TPML_DIGESTs, and each TPML_DIGEST of 8 TPM2B_DIGEST slots of
    64 bytes. What Keylime's checkquote and tpm2_checkquote -f read."""
    import struct

    bitmap = bytearray(3)
    for pcr in values:
        bitmap[pcr // 8] |= 1 << (pcr % 8)
    selection = struct.pack("<I", 1) + struct.pack("<HB3s2x", alg, 3, bytes(bitmap)) + bytes(8 * 15)
    ordered = [values[p] for p in sorted(values)]
    lists = [ordered[i : i + 8] for i in range(0, len(ordered), 8)]
    body = b"".join(struct.pack("<I", len(chunk)) + b"".join(struct.pack("<H", len(d)) + d.ljust(64, b"\0")
                                                            for d in chunk + [b""] * (8 - len(chunk)))
                    for chunk in lists)
    return selection + struct.pack("<I", len(lists)) + body


def printed_pcrs(yaml: str) -> dict[str, dict[int, str]]:
    """The ``pcrs:`` block tpm2_quote prints: ``  sha256:`` then ``    17: 0x...`` lines."""
    values: dict[str, dict[int, str]] = {}
    inside, bank = False, ""
    for line in yaml.splitlines():
        if not line.startswith(" "):
            inside = line.startswith("pcrs:")
        elif inside and line.startswith("    ") and bank:
            pcr, _, value = line.strip().partition(": ")
            values[bank][int(pcr)] = value.removeprefix("0x").lower()
        elif inside:
            bank = line.strip().rstrip(":")
            values[bank] = {}
    return values


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

    def unrestricted_key(self, label: str = "forger") -> Ak:
        """A signing key that is not restricted (under an owner primary): TPM2_Sign signs any digest with it."""
        key = Ak(*(self.dir / f"{label}.{ext}" for ext in ("ctx", "pub", "pem", "name")))
        self.run("tpm2_createprimary", "-C", "o", "-c", f"{label}-primary.ctx")
        self.flush()
        self.run("tpm2_create", "-C", f"{label}-primary.ctx", "-G", "rsa2048:rsassa-sha256:null", "-a",
                 "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign", "-u", str(key.public), "-r",
                 f"{label}.priv")
        self.flush()
        self.run("tpm2_load", "-C", f"{label}-primary.ctx", "-u", str(key.public), "-r", f"{label}.priv", "-c",
                 str(key.ctx))
        self.flush()
        self.run("tpm2_readpublic", "-c", str(key.ctx), "-o", str(key.pem), "-f", "pem", "-n", str(key.name))
        self.flush()
        return key

    def sign(self, key: Ak, message: Path, scheme: str = "rsassa") -> Path:
        """TPM2_Sign over SHA-256(message) (the TPM hashes it, so a restricted key gets its ticket)."""
        out = message.with_suffix(".sig")
        self.run("tpm2_sign", "-c", str(key.ctx), "-g", "sha256", "-s", scheme, "-o", str(out), str(message))
        self.flush()
        return out

    def quote(self, ak: Ak, selection: str, nonce: bytes, label: str = "quote") -> Quote:
        """tpm2_quote of ``selection`` (tpm2-tools syntax, e.g. ``sha256:17,18``) with qualifying data ``nonce``."""
        attest, signature, pcrs = (self.dir / f"{label}.{ext}" for ext in ("attest", "sig", "pcrs"))
        run = self.run("tpm2_quote", "-c", str(ak.ctx), "-l", selection, "-q", nonce.hex(), "-m", str(attest),
                       "-s", str(signature), "-o", str(pcrs), "-g", "sha256")
        self.flush()
        return Quote(attest, signature, pcrs, printed_pcrs(run.stdout))

    def checkquote(self, pem: Path, quote: Quote, nonce: bytes) -> subprocess.CompletedProcess[str]:
        """The referee: tpm2_checkquote's verdict on a quote (signature, nonce and the PCR digest)."""
        return self.run("tpm2_checkquote", "-u", str(pem), "-m", str(quote.attest), "-s", str(quote.signature),
                        "-f", str(quote.pcrs), "-g", "sha256", "-q", nonce.hex(), check=False)
