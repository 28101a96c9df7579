#!/usr/bin/env bash
# Installs what sld needs on Debian 12 (as root) and a virtualenv with the project in .venv.
#   setup.sh          what sld and the demo need: scripts/debian-packages.txt, sld in .venv
#   setup.sh --test   also what the test suite needs: scripts/debian-packages-test.txt, the test extras,
#                     and promtool and prometheus-node-exporter as bare binaries in /usr/local/bin,
#                     unpacked from Debian's packages rather than installed, because installing those
#                     packages creates users and enables and starts the prometheus services.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
lists=(scripts/debian-packages.txt)
extras=""
if [ "${1:-}" = --test ]; then
  lists+=(scripts/debian-packages-test.txt)
  extras="[test]"
fi
mapfile -t pkgs < <(grep -hv '^\s*#' "${lists[@]}" | awk 'NF')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
updated=""
apt_update() { [ -n "$updated" ] || { apt-get update -qq; updated=1; }; }
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt_update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# binary PACKAGE PATH: PATH out of Debian's PACKAGE into /usr/local/bin, the package itself not installed.
binary() {
  command -v "$(basename "$2")" >/dev/null && return
  echo "setup: unpacking $2 from $1 into /usr/local/bin (the package, and its service, are not installed)" >&2
  apt_update
  local tmp; tmp=$(mktemp -d); chmod 0777 "$tmp"  # apt-get download runs as _apt
  (cd "$tmp" && apt-get download -qq "$1")
  dpkg-deb -x "$tmp"/*.deb "$tmp/root"
  install -m 0755 "$tmp/root$2" /usr/local/bin/
  rm -rf "$tmp"
}
if [ -n "$extras" ]; then
  binary prometheus /usr/bin/promtool
  binary prometheus-node-exporter /usr/bin/prometheus-node-exporter
fi

# The virtualenv is made from Debian's own interpreter, the one packaging/debian runs sld with: built with
# PGO and LTO and linked statically, it starts and imports a quarter quicker and in less memory than a
# python3 built from source (a pyenv or /usr/local one that comes first on PATH). One made by another
# interpreter is replaced.
if [ ! -x .venv/bin/python ] || ! grep -qsx 'home = /usr/bin' .venv/pyvenv.cfg; then
  [ ! -e .venv ] || echo "setup: .venv was not made by /usr/bin/python3: making it again" >&2
  rm -rf .venv
  /usr/bin/python3 -m venv .venv
fi
# tpm2-pytss compiled without FAPI (its build leaves FAPI out when pkg-config has no tss2-fapi): sld calls
# ESAPI and the marshalling library only, and a binding linked to libtss2-fapi maps libcurl, gnutls, krb5
# and ldap into every sld process: 4.4 MiB of the daemon's RSS and 3-4 ms of each command's start, and
# code a TPM daemon has no use for. Built from the sdist, never from a wheel cached with FAPI.
no_fapi='import tpm2_pytss._libtpm2_pytss as b; raise SystemExit(hasattr(b.lib, "Fapi_Initialize"))'
if ! .venv/bin/python -c "$no_fapi" 2>/dev/null; then
  echo "setup: compiling tpm2-pytss's binding without FAPI into .venv" >&2
  pc=$(mktemp -d)
  for dir in $(pkg-config --variable pc_path pkg-config | tr : ' '); do
    for f in "$dir"/*.pc; do
      [ -e "$f" ] && [ "$(basename "$f")" != tss2-fapi.pc ] && [ ! -e "$pc/$(basename "$f")" ] && ln -s "$f" "$pc/"
    done
  done
  .venv/bin/python -m pip uninstall -q -y tpm2-pytss 2>/dev/null || true
  # PKG_CONFIG_LIBDIR replaces pkg-config's own search path; a PKG_CONFIG_PATH would still show tss2-fapi
  env -u PKG_CONFIG_PATH PKG_CONFIG_LIBDIR="$pc" .venv/bin/python -m pip install -q --no-cache-dir \
    --no-binary tpm2-pytss "$(sed -n 's/^ *"\(tpm2-pytss[^"]*\)",$/\1/p' pyproject.toml)" \
    2> >(grep -v '^DEPRECATION: --no-binary' >&2)  # pip 23.0's notice about the wheel cache we do not use
  rm -rf "$pc"
  .venv/bin/python -c "$no_fapi" || { echo "setup: tpm2-pytss's binding still links FAPI" >&2; exit 1; }
fi
marker=.venv/.sld-installed${extras:+-test}
check='import sld, construct, tpm2_pytss, pyroute2, prometheus_client, systemd'
[ -z "$extras" ] || check+=', pytest, hypothesis'
if ! .venv/bin/python -c "$check" 2>/dev/null || [ pyproject.toml -nt "$marker" ] || [ bin/sld -nt "$marker" ]; then
  echo "setup: installing sld$extras into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # A path .pth, not setuptools' import-hook finder: the finder costs every sld process ~9 ms at start.
  .venv/bin/python -m pip install -q -e ".$extras" --config-settings editable_mode=compat 2>/dev/null \
    || .venv/bin/python -m pip install -q -e ".$extras"
  touch "$marker"
fi
