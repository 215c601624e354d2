#!/usr/bin/env bash
# jaxlth's measurements on one accelerator, in at most 8 minutes, without a network (issue 28):
#
#   bash scripts/prepare_device.sh                  # here, with a network: device/ (wheels, Fashion-MNIST)
#   OUT=/some/folder bash scripts/device_check.sh   # there, with device/ carried beside the checkout
#
# It installs the wheels of device/wheels that the machine lacks (pip, no index, into a folder put on
# PYTHONPATH with the checkout), points jaxlth at device/fashion-mnist, then runs these parts, most
# important first, each under `timeout`:
#
#   setup                      the wheels, the imports, the device jax sees, the Fashion-MNIST files
#   conv_resnet20_float32      python -m jaxlth.bench conv: ResNet-20, R = 1, 2, 4, 8, 16, against the plain
#   conv_resnet20_bfloat16       Flax + optax loop; a CIFAR-10 epoch per replicate and the targets
#   conv_vgg16_float32         the same for VGG-16
#   conv_vgg16_bfloat16
#   fit                        python -m jaxlth.main --fit: how many ResNet-20 replicates the device holds
#                              (CIFAR-10-shaped synthetic data: there is no CIFAR-10 without a network)
#   lenet_bench                python -m jaxlth.bench: LeNet-300-100 steps, R = 1 .. 32 (README's H100 table)
#   lenet_40ep_r8              the whole process of the LeNet recipe, 40 epochs, 8 replicates (README: 25 s
#   lenet_1ep                    on an H100), and of 1 epoch of 1 replicate: start-up and compilation
#   rewinding_instability      configs/rewinding_fashion_mnist.py:instability and :lottery with their
#   rewinding_lottery            defaults, as far as their time goes (skipped when the recipe is absent)
#
# The budgets below (seconds, scaled by DEVICE_CHECK_SECONDS / 470) add up to DEVICE_CHECK_SECONDS
# (default 470): part k must end by the sum of the budgets of parts 1..k, so time one part leaves over
# goes to the next, every part gets at least its own budget, and the whole stays within the total.
# A part that fails or runs out of time does not stop the others. Its output goes to $OUT/<group>.txt
# (setup, conv, fit, lenet, rewinding), what it ended with to $OUT/parts.tsv, and at the end
# scripts/device_summary.py writes $OUT/summary.md: per part its status, seconds, key numbers and
# whether the targets were met (a ResNet-20 CIFAR-10 epoch <= 2 s per replicate at R = 8, 8 replicates
# >= 4x one, jaxlth >= 0.9x the plain loop), and which parts failed. Exit status 1 when any did.
#
# Settings (environment): OUT (default runs/device_check), PYTHON (python3), DEVICE_CHECK_SECONDS,
# DEVICE_CHECK_WORK (workdirs; default a new folder in /tmp), DEVICE_CHECK_DRY_RUN=1 (list the commands
# in $OUT/commands.txt and write the summary without running anything: what tests/test_device_check.py runs).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SCRIPT=$ROOT/scripts/device_check.sh
PY=${PYTHON:-python3}
OUT=${OUT:-$ROOT/runs/device_check}
DRY=${DEVICE_CHECK_DRY_RUN:-0}
TOTAL=${DEVICE_CHECK_SECONDS:-470}
DEVICE=$ROOT/device
SITE=${DEVICE_CHECK_SITE:-/tmp/jaxlth-device-site}
REWINDING=configs/rewinding_fashion_mnist.py

export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export JAXLTH_DATA_DIR=$DEVICE  # searched with its fashion-mnist/ subfolder
export JAXLTH_COMPILATION_CACHE=off  # every process compiles: the times include compilation
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg

# --- the setup part, run as its own process: bash scripts/device_check.sh __setup ---------------------
setup() {
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PY" --version
  shopt -s nullglob
  local wheels=("$DEVICE"/wheels/*.whl)
  [ ${#wheels[@]} -gt 0 ] || echo "no wheels in $DEVICE/wheels: run scripts/prepare_device.sh and carry device/"
  # Only the wheels of distributions not installed yet: what the machine has stays as it is.
  local missing
  missing=$("$PY" - ${wheels[@]+"${wheels[@]}"} <<'EOF'
import importlib.metadata
import os
import sys

for path in sys.argv[1:]:
    try:
        importlib.metadata.version(os.path.basename(path).split("-")[0])
    except importlib.metadata.PackageNotFoundError:
        print(path)
EOF
  )
  if [ -n "$missing" ]; then
    echo "installing into $SITE: $(for w in $missing; do basename "$w"; done | tr '\n' ' ')"
    # shellcheck disable=SC2086 # one wheel path a word
    "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" $missing ||
      return 1
  else
    echo "every wheel of $DEVICE/wheels is installed already"
  fi
  "$PY" - <<'EOF'
import importlib

import jax

for name in ("flax", "optax", "orbax.checkpoint", "ml_collections", "matfree", "pandas", "matplotlib", "jaxlth.main",
             "jaxlth.bench"):
    importlib.import_module(name)
from jaxlth.data import sources

device = jax.devices()[0]
print(f"jax {jax.__version__} on {jax.device_count()} x {device.platform} ({device.device_kind})")
found = sources.find_local("fashion_mnist")
print(f"Fashion-MNIST: {found}")
assert found, "no Fashion-MNIST IDX files: carry device/ (scripts/prepare_device.sh)"
EOF
}
if [ "${1:-}" = __setup ]; then
  setup
  exit
fi

# --- the parts ------------------------------------------------------------------------------------------
mkdir -p "$OUT" || exit 1
if [ "$DRY" = 1 ]; then
  WORK=${DEVICE_CHECK_WORK:-/tmp/jaxlth-device-check}
else
  WORK=${DEVICE_CHECK_WORK:-$(mktemp -d /tmp/jaxlth-device-check.XXXXXX)}
  mkdir -p "$WORK"
fi
: >"$OUT/parts.tsv"
[ "$DRY" = 1 ] && : >"$OUT/commands.txt"
START=$(date +%s)
PLANNED=0

record() {  # record NAME GROUP STATUS SECONDS TIMEOUT NOTE
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$OUT/parts.tsv"
}

part() {  # part NAME GROUP BUDGET COMMAND...: runs COMMAND until the part's deadline
  local name=$1 group=$2 budget=$(($3 * TOTAL / 470))
  shift 3
  PLANNED=$((PLANNED + budget))
  local left=$((START + PLANNED - $(date +%s)))
  if [ "$DRY" = 1 ]; then
    printf '%q ' "$@" >>"$OUT/commands.txt"
    echo >>"$OUT/commands.txt"
    record "$name" "$group" dry 0 "$budget" "not run (DEVICE_CHECK_DRY_RUN=1)"
    return
  fi
  if [ "$left" -lt 5 ]; then
    record "$name" "$group" skipped 0 "$left" "no time left"
    return
  fi
  echo "=== part $name (timeout ${left} s): $*" | tee -a "$OUT/$group.txt"
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$left" "$@" >>"$OUT/$group.txt" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  local seconds
  seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
  echo "=== part $name: exit status $rc after $seconds s" | tee -a "$OUT/$group.txt"
  record "$name" "$group" "$rc" "$seconds" "$left" ""
}

skip() {  # skip NAME GROUP BUDGET REASON: a part that cannot run here (its budget goes to the next)
  local budget=$(($3 * TOTAL / 470))
  PLANNED=$((PLANNED + budget))
  record "$1" "$2" skipped 0 "$budget" "$4"
}

part setup setup 30 bash "$SCRIPT" __setup

CONV=(-m jaxlth.bench conv --replicates 1,2,4,8,16 --steps 30 --repeats 3 --train-size 50000)
part conv_resnet20_float32 conv 100 "$PY" "${CONV[@]}" --models resnet20 --dtype float32
part conv_resnet20_bfloat16 conv 65 "$PY" "${CONV[@]}" --models resnet20 --dtype bfloat16
part conv_vgg16_float32 conv 55 "$PY" "${CONV[@]}" --models vgg16 --dtype float32
part conv_vgg16_bfloat16 conv 45 "$PY" "${CONV[@]}" --models vgg16 --dtype bfloat16

part fit fit 30 "$PY" -m jaxlth.main --config configs/resnet20_cifar10.py --fit --config.replicates=8 \
  --config.data.name=synthetic --config.data.synthetic_image_shape="(32, 32, 3)" \
  --config.data.synthetic_train_size=50000 --config.data.synthetic_test_size=10000

part lenet_bench lenet 35 "$PY" -m jaxlth.bench train --epochs 2 --replicates 1,2,4,8,16,32
part lenet_40ep_r8 lenet 45 "$PY" -m jaxlth.main --config configs/lenet_fashion_mnist.py \
  --workdir "$WORK/lenet_40ep_r8" --config.replicates=8
part lenet_1ep lenet 20 "$PY" -m jaxlth.main --config configs/lenet_fashion_mnist.py \
  --workdir "$WORK/lenet_1ep" --config.train.steps=1ep

for stage in instability lottery; do
  budget=$([ "$stage" = instability ] && echo 25 || echo 20)
  if [ -f "$REWINDING" ]; then
    part "rewinding_$stage" rewinding "$budget" "$PY" -m jaxlth.main --config "$REWINDING:$stage" \
      --workdir "$WORK/rewinding_$stage"
  else
    skip "rewinding_$stage" rewinding "$budget" "$REWINDING is not in this checkout"
  fi
done

echo "=== $(($(date +%s) - START)) s in all; workdirs in $WORK"
"$PY" "$ROOT/scripts/device_summary.py" "$OUT" --budget "$TOTAL"
