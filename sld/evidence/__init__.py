"""Remote attestation evidence: collected and built here (``sld attest``), verified elsewhere with only the
AK's public key (``sld verify --evidence``); the format is docs/evidence.md's."""
