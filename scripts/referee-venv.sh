#!/usr/bin/env bash
# Builds .venv-referee: a separate virtualenv holding the PyPI `keylime` package, used only by tests as
# an independent referee (its tpm_policy reader and PCR/quote checks judge what sld exports). Never a
# runtime dependency of sld. Idempotent and cached: a second run with the same version does nothing.
# Prints the venv's python. Override the place with SLD_REFEREE_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYLIME_VERSION=7.14.3
# keylime's wheel declares no dependencies; these are what its tpm/ modules import (its requirements.txt).
DEPS=(cryptography pyyaml requests tornado sqlalchemy alembic packaging psutil lark pyasn1 pyasn1-modules jinja2
      jsonschema typing-extensions)
# keylime.signing imports gpg (GPGME's binding), which PyPI only offers as source: take Debian's, through
# a venv of Debian's python3 that sees its system site-packages.
if ! dpkg-query -W -f='${Status}' python3-gpg 2>/dev/null | grep -q "ok installed"; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-gpg python3-venv >&2
fi
venv="${SLD_REFEREE_VENV:-$PWD/.venv-referee}"
stamp="$venv/.keylime-$KEYLIME_VERSION"
if [ ! -e "$stamp" ]; then
  echo "referee-venv: building $venv with keylime==$KEYLIME_VERSION" >&2
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "keylime==$KEYLIME_VERSION" "${DEPS[@]}" >&2
  "$venv/bin/python" -c 'import keylime.tpm.tpm_main, keylime.tpm.tpm_util' >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
