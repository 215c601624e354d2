#!/usr/bin/env bash
# One command from a fresh clone to a trained network: sets up (scripts/setup.sh), then trains
# LeNet-300-100 on Fashion-MNIST into runs/lenet. Extra arguments go to jaxlth.main, e.g.
#   ./run.sh --config.replicates=4
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m jaxlth.main --config configs/lenet_fashion_mnist.py --workdir "${WORKDIR:-runs/lenet}" "$@"
