#!/usr/bin/env bash
# Sets up jaxlth on a fresh machine: a virtual environment in .venv with the package and its test
# extras, and (as root on Debian/Ubuntu) the Fashion-MNIST files from the Debian archive.
# Sourced by run.sh and test.sh; safe to run again (it skips what is already done).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.jaxlth-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  touch "$stamp"
fi

FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -f "$FMNIST/train-images-idx3-ubyte.gz" ] && [ -z "${JAXLTH_DATA_DIR:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing the Debian package dataset-fashion-mnist (Fashion-MNIST IDX files in $FMNIST)..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null
  else
    echo "Fashion-MNIST not found: run 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu) or put the IDX files in a folder named by \$JAXLTH_DATA_DIR." >&2
  fi
fi
