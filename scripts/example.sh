#!/usr/bin/env bash
# Set up, then run provenance on the built-in example: a small flake with a test suite,
# committed to a fresh git repo, attested with a fresh key, and the result shown.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
exec .venv/bin/provenance example "$@"
