"""The file a verifier's ``tpm2_makecredential -o`` writes (tpm2-tools' credential format), declared once.

A big-endian header (magic 0xBADCC0DE, version 1), then the TPM2_MakeCredential outputs as the TPM
marshals them (TPM 2.0 Part 3 §12.6): TPM2B_ID_OBJECT credentialBlob and TPM2B_ENCRYPTED_SECRET secret
(Part 2 §12.4.3, §11.4.33). ``sld ak activate`` parses it; the tests build it.
"""

from __future__ import annotations

import construct as cs

from sld.formats import tpm2

MAGIC = 0xBADCC0DE
VERSION = 1

CREDENTIAL_FILE = cs.Struct(
    "magic" / cs.Const(MAGIC, cs.Int32ub),
    "version" / cs.Const(VERSION, cs.Int32ub),
    "credentialBlob" / tpm2.tpm2b("credential"),  # TPM2B_ID_OBJECT
    "secret" / tpm2.tpm2b("secret"),  # TPM2B_ENCRYPTED_SECRET
    cs.Terminated,
)
