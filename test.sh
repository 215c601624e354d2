#!/usr/bin/env bash
# One command that sets up (scripts/setup.sh) and runs the whole test suite.
# Extra arguments go to pytest, e.g. ./test.sh -m "not slow".
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m pytest -ra "$@"
