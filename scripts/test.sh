#!/usr/bin/env bash
# The test job: set up, then run every test (unit, Pulumi mocks, lab tests in namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pytest "$@"
