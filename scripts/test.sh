#!/usr/bin/env bash
# Set up, then run the linters and the whole test suite, real-Nix tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
sh scripts/install-test-deps.sh >&2
. scripts/env.sh
.venv/bin/ruff check provenance tests bench
.venv/bin/mypy
exec .venv/bin/pytest -q "$@"
