#!/usr/bin/env bash
# Install what the tests need and run them. Extra arguments go to pytest (e.g. ./scripts/test.sh tests/unit).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: Chromium for browser tests, Pango for WeasyPrint (PDF). Installed when we may (root).
need=()
command -v chromium >/dev/null || need+=(chromium)
ldconfig -p 2>/dev/null | grep -q libpangoft2 || need+=(libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> apt-get install ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "warning: missing system packages (${need[*]}); install them as root for the full suite" >&2
  fi
fi

./scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
