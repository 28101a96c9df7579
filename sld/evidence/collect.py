"""Evidence collected on the attested host: one path for ``sld attest`` and the daemon's ``attest`` request.

Reads the platform and judges it as ``sld verify --mode validate`` does (never extending: attesting must
not change what it attests), quotes PCR17-22 of every allocated bank with the AK, and hands both to the
pure builder (sld.evidence.build).
"""

from __future__ import annotations

from typing import Any

from sld import ak
from sld.evidence import build
from sld.tpm import Tpm
from sld.vocab import Mode


def collect(source_spec: str, tpm: Tpm, nonce: bytes, handle: int = ak.DEFAULT_HANDLE) -> dict[str, Any]:
    """The evidence object for ``nonce`` (refused unless 16..64 bytes, before anything is read)."""
    from sld.verify import verify_source_snapshot

    build.check_nonce(nonce)
    verdict, snapshot = verify_source_snapshot(source_spec, tpm, mode=Mode.VALIDATE)
    banks = tpm.banks()
    public, name, quotes = ak.quote(tpm, nonce, banks, handle)
    return build.evidence(nonce, public, name, handle, banks, quotes, snapshot, verdict)
