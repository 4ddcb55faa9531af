#!/usr/bin/env bash
# Install Skriptoteket into a project-local virtualenv (.venv) and configurable-http-proxy into node_modules/.
# Idempotent: a second run only checks. No root needed. Extras to install can be passed: ./scripts/setup.sh test
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
extras="tools,authoring${1:+,$1}"

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  echo "==> installing skriptoteket[$extras] (a few minutes the first time)"
  .venv/bin/pip install --quiet --upgrade pip >/dev/null
  .venv/bin/pip install --quiet -e ".[$extras]"
  # as in the user image (runner_kernel/Dockerfile): an optional jsonschema format checker, pulled in through
  # jupyter_events, that compiles a grammar at import: ~1.1 s of CPU in every server, kernel manager and hub start
  .venv/bin/pip uninstall --quiet --yes rfc3987-syntax >/dev/null 2>&1 || true
  rm -f .venv/.installed-*
  touch "$stamp"
fi

if [ ! -x node_modules/.bin/configurable-http-proxy ]; then
  echo "==> installing configurable-http-proxy (npm)"
  npm install --silent --no-save --no-audit --no-fund --prefix . configurable-http-proxy@5.3.0 >/dev/null 2>&1 \
    || npm install --no-save --no-audit --no-fund --prefix . configurable-http-proxy@5.3.0
fi
