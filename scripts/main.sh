#!/usr/bin/env bash
# The main job: set up (Debian packages, .venv), then rehearse the default stack (wordpress) in
# local network namespaces: real rules, real daemons, real peer sync, every flow probed, torn down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/enclave rehearse --stack "${STACK:-wordpress}" "$@"
