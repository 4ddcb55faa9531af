#!/usr/bin/env bash
# The whole demo: install (first time), then start Postgres, the hub and the service. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/skriptoteket up "$@"
