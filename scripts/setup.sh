#!/usr/bin/env bash
# Installs what sld needs on Debian 12 (as root) and a virtualenv with the project in .venv.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t pkgs < <(grep -v '^\s*#' scripts/debian-packages.txt | awk 'NF')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import sld, construct, tpm2_pytss, pyroute2, prometheus_client, systemd, pytest, hypothesis' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.sld-installed ] || [ bin/sld -nt .venv/.sld-installed ]; then
  echo "setup: installing sld into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # A path .pth, not setuptools' import-hook finder: the finder costs every sld process ~9 ms at start.
  .venv/bin/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat 2>/dev/null \
    || .venv/bin/python -m pip install -q -e '.[test]'
  touch .venv/.sld-installed
fi
