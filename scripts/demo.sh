#!/usr/bin/env bash
# Set up sld (Debian packages + .venv) and run it on the simulated platform: a clean Secure Launch
# and a tampered one, as the Secure Launch kernel's securityfs would show them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
sld=.venv/bin/sld
out=$(mktemp -d /tmp/sld-demo.XXXXXX)
$sld sim list
for scenario in clean tampered-log; do
  echo; echo "=== scenario: $scenario"
  $sld sim securityfs --scenario "$scenario" -o "$out/$scenario"
  $sld inspect regs --source "securityfs:$out/$scenario"
  echo
  $sld inspect log --source "securityfs:$out/$scenario" --pcrs
done
echo; echo "demo files are in $out (manifest.json holds the PCR values each launch leaves in the TPM)"
