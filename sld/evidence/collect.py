"""Evidence collected on the attested host: one path for ``sld attest`` and the daemon's ``attest`` request.

Quotes PCR17-22 of every allocated bank with the AK first, then reads the platform and judges it as
``sld verify --mode validate`` does, against exactly the PCR values read with the quotes (QuotedPcrs):
the advisory verdict is about what the verifier will check, attesting never extends, and no PCR is read
twice. The pure builder (sld.evidence.build) lays the object out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sld import ak
from sld.errors import TpmError
from sld.evidence import build
from sld.replay import DRTM_PCRS
from sld.vocab import Mode, TpmErrorKind


class QuotedPcrs:
    """The PCR values read with the quotes, as the read-only PCR device verification takes (sld.verify)."""

    def __init__(self, tcti_string: str, quotes: Iterable[ak.Quote]) -> None:
        self.tcti_string = tcti_string
        self._values = {q.bank: q.pcrs for q in quotes}

    def banks(self) -> tuple[str, ...]:
        """The banks quoted: only those can be compared, whatever the TPM has."""
        return tuple(self._values)

    def read_pcrs(self, pcrs: Iterable[int], banks: Iterable[str]) -> dict[str, dict[int, bytes]]:
        """The quoted values of PCR17-22; any other PCR is a TpmError, since the evidence does not cover it."""
        wanted = tuple(pcrs)
        unquoted = [p for p in wanted if p not in DRTM_PCRS]
        if unquoted:
            raise TpmError(TpmErrorKind.COMMAND, f"PCRs {unquoted} are not quoted (evidence covers PCR17-22)")
        return {bank: {p: self._values[bank][p] for p in wanted} for bank in banks}

    def extend(self, pcr: int, digests: Mapping[str, bytes]) -> None:
        """Always refused: attesting reports the platform as it is and never performs deferred extends."""
        raise TpmError(TpmErrorKind.COMMAND, f"PCR{pcr}: attesting never extends")


def collect(source_spec: str, key: ak.AttestationKey, nonce: bytes) -> dict[str, Any]:
    """The evidence object for ``nonce`` (refused unless 16..64 bytes, before anything is read), quoted by
    ``key`` (the daemon keeps one per TPM connection, so its public area is read once)."""
    from sld.verify import verify_source_snapshot

    build.check_nonce(nonce)
    banks = key.tpm.banks()
    quotes = key.quote(nonce, banks)
    verdict, snapshot = verify_source_snapshot(source_spec, QuotedPcrs(key.tpm.tcti_string, quotes),
                                               mode=Mode.VALIDATE)
    return build.evidence(nonce, key.public, key.name, key.handle, banks, quotes, snapshot, verdict)
