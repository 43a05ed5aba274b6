#!/usr/bin/env bash
# Installs the real airbyte-source-faker from PyPI into .venv-faker (reused if present).
# Tests find it at .venv-faker/bin/source-faker.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${AIRLOCK_FAKER_VENV:-.venv-faker}"
VERSION="${FAKER_VERSION:-7.2.1}"
if [ -x "$VENV/bin/source-faker" ] && "$VENV/bin/pip" show airbyte-source-faker 2>/dev/null | grep -q "^Version: $VERSION$"; then
  echo "setup-python: $VENV already has airbyte-source-faker $VERSION"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "airbyte-source-faker==$VERSION"
"$VENV/bin/source-faker" spec >/dev/null
echo "setup-python: installed airbyte-source-faker $VERSION into $VENV"
