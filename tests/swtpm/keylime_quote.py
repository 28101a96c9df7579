"""Run by the referee virtualenv's python (scripts/referee-venv.sh), never imported by sld or pytest:
Keylime's quote checker (keylime.tpm.tpm_util.checkquote) judges one quote of an evidence file.

argv: AK_PEM NONCE_HEX ATTEST SIGNATURE PCR_BLOB (tpm2-tools' PCR blob format). Prints one JSON object:
the PCR values Keylime accepted, or the error it raised.
"""

import json
import sys
from pathlib import Path

from keylime.tpm import tpm_util


def main() -> None:
    pem, nonce, attest, signature, pcrs = sys.argv[1:6]
    try:
        values = tpm_util.checkquote(Path(pem).read_bytes(), bytes.fromhex(nonce), Path(signature).read_bytes(),
                                     Path(attest).read_bytes(), Path(pcrs).read_bytes(), "sha256")
    except Exception as err:  # Keylime signals a rejected quote with exceptions of several types
        print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
        return
    print(json.dumps({"pcrs": {str(k): v for k, v in values.items()}}))


main()
