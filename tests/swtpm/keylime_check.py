"""Run by the referee virtualenv's python (scripts/referee-venv.sh), never imported by sld or pytest:
Keylime's own policy reader and quote/PCR check judge a ``tpm_policy`` from ``sld policy export``.

argv: POLICY_JSON AK_TPM2B_PUBLIC ATTEST SIGNATURE PCRS NONCE. Prints one JSON object: the mask
readPolicy computed and the failure events Tpm.check_quote reported (none: accepted).
"""

import base64
import json
import sys
from pathlib import Path

from keylime.common.algorithms import Hash
from keylime.mba import mba
from keylime.tpm import tpm_util
from keylime.tpm.tpm_main import Tpm


def b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def main() -> None:
    policy_file, ak, attest, signature, pcrs, nonce = sys.argv[1:7]
    mba.load_imports(skip_custom_policies=True)  # what the verifier does at start-up
    policy = tpm_util.readPolicy(Path(policy_file).read_text())
    quote = "r" + ":".join((b64(attest), b64(signature), b64(pcrs)))
    failure = Tpm().check_quote(None, nonce, None, quote, b64(ak), policy, hash_alg=Hash.SHA256,
                                skip_clock_check=True, skip_data_pcr_check=True)
    print(json.dumps({"mask": policy["mask"], "events": [e.event_id for e in failure.events]}))


main()
