#!/usr/bin/env bash
# The main job: set up, then render and statically check the default stack (wordpress).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=$(mktemp -d /tmp/enclave-render.XXXXXX)
trap 'rm -rf "$out"' EXIT
.venv/bin/enclave render --stack "${STACK:-wordpress}" --out "$out/rendered"
.venv/bin/python -m lab.acceptance "$out/rendered"
