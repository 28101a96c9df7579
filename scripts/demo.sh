#!/usr/bin/env bash
# Set up sld (Debian packages + .venv) and run its main job, `sld verify`, on the simulated platform:
# a physical-memory image (TXT registers, heap, SLRT, DRTM log) plus a real swtpm driven through an
# emulated dynamic launch. Three launches: clean, tampered, and one whose kernel deferred its extends.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
sld=.venv/bin/sld
dir=${SLD_SIM_DIR:-/run/sld-sim}
trap '$sld sim down --dir "$dir" >/dev/null' EXIT
$sld sim list
for scenario in clean tampered-log partial-extend; do
  echo; echo "=== scenario: $scenario"
  $sld sim up --scenario "$scenario" --dir "$dir"
  tcti=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tcti"])' "$dir/sim.json")
  echo
  $sld verify --source "image:$dir/phys.img" --tcti "$tcti" --locality 2 \
    && echo "(exit 0)" || echo "(exit $?)"
done
