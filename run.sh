#!/usr/bin/env bash
# One command from a fresh clone to lottery tickets: sets up (scripts/setup.sh), then runs a short
# version of the LeNet-300-100 / Fashion-MNIST lottery experiment into runs/quickstart: 4 levels of
# 20% global magnitude pruning with rewinding to initialisation, the random pruning and random
# reinitialisation branches beside IMP, 2 replicates in one program, 5 epochs per level (a few
# minutes on a 2-core CPU). It ends with a table and the paths of the figures.
# Extra arguments go to jaxlth.main, e.g. ./run.sh --config.lottery.levels=6
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m jaxlth.main --config configs/lenet_fashion_mnist.py:lottery \
  --workdir "${WORKDIR:-runs/quickstart}" \
  --config.lottery.levels=4 --config.train.steps=5ep --config.replicates=2 \
  --config.lottery.branches="('random_prune', 'random_reinit')" "$@"
