#!/usr/bin/env bash
# Prepares the folder device/ (ignored by git) that scripts/device_check.sh needs on an accelerator
# machine without a network: device/wheels/ holds a wheel of every runtime dependency of jaxlth that
# such a machine lacks, and device/fashion-mnist/ the four Fashion-MNIST IDX files.
#
#   bash scripts/prepare_device.sh          # then carry device/ to the machine with the checkout
#
# Which wheels: the runtime dependencies of pyproject.toml and everything they need in turn (their
# environment markers read for CPython 3.12 on Linux), at the versions installed in .venv (the ones
# the tests pass with), except
#   * what the accelerator machine has installed already ($DEVICE_HAS, default below: the packages of
#     that closure found in the NVIDIA H200 image's package list -- JAX, Flax, Optax, Orbax, NumPy,
#     SciPy, pandas, matplotlib, ...); a package installed there is not followed further;
#   * tensorflow-datasets ($DEVICE_SKIP): it reads or downloads TFDS-prepared data, of which a machine
#     without a network has none; the Fashion-MNIST IDX files are read without it.
# Every wheel is fetched with `pip download --no-deps --only-binary=:all: --python-version 3.12` for
# manylinux x86_64 ($DEVICE_PLATFORMS). The folder, with the rest of the working tree that travels to
# the machine, must stay within 64 MiB: the script fails, saying by how much, when it does not.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEST=device
PY=${PYTHON:-.venv/bin/python}
LIMIT_MIB=${DEVICE_LIMIT_MIB:-64}
FMNIST=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
DEVICE_HAS=${DEVICE_HAS:-"absl-py aiofiles certifi charset-normalizer cloudpickle contourpy cycler etils flax fonttools
  fsspec humanize idna jax jaxlib kiwisolver markdown-it-py matplotlib mdurl ml-dtypes msgpack numpy opt-einsum optax
  orbax-checkpoint packaging pandas pillow prometheus-client protobuf psutil pygments pyparsing python-dateutil pyyaml
  requests rich safetensors scipy simplejson tensorstore tqdm treescope typing-extensions urllib3 uvloop zipp"}
DEVICE_SKIP=${DEVICE_SKIP:-"tensorflow-datasets"}
DEVICE_PLATFORMS=${DEVICE_PLATFORMS:-"manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64
  manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64"}

fail() {
  echo "prepare_device.sh: error: $*" >&2
  exit 1
}

[ -x "$PY" ] || fail "$PY not found: run scripts/setup.sh first (the versions come from the tested .venv)"

# name==version of every wheel to fetch, one a line.
requirements=$(DEVICE_HAS="$DEVICE_HAS" DEVICE_SKIP="$DEVICE_SKIP" "$PY" - <<'EOF'
import importlib.metadata as metadata
import os
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

MARKERS = {
    "python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
    "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
    "implementation_name": "cpython", "platform_python_implementation": "CPython",
}
has = {canonicalize_name(n) for n in os.environ["DEVICE_HAS"].split()}
skip = {canonicalize_name(n) for n in os.environ["DEVICE_SKIP"].split()}
with open("pyproject.toml", "rb") as f:
    roots = [Requirement(r) for r in tomllib.load(f)["project"]["dependencies"]]


def needed(requirement, extras):
    marker = requirement.marker
    return marker is None or any(marker.evaluate({**MARKERS, "extra": e}) for e in ("", *extras))


todo = [(canonicalize_name(r.name), tuple(r.extras)) for r in roots]
seen, wanted = set(), {}
while todo:
    name, extras = todo.pop()
    if (name, extras) in seen or name in has or name in skip:
        continue
    seen.add((name, extras))
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        sys.exit(f"{name} is not installed in the .venv: run scripts/setup.sh")
    wanted[name] = dist.version
    for line in dist.requires or []:
        requirement = Requirement(line)
        if needed(requirement, extras):
            todo.append((canonicalize_name(requirement.name), tuple(requirement.extras)))
for name in sorted(wanted):
    print(f"{name}=={wanted[name]}")
EOF
) || fail "could not list the wheels"

rm -rf "$DEST/wheels"
mkdir -p "$DEST/wheels" "$DEST/fashion-mnist"
platforms=()
for p in $DEVICE_PLATFORMS; do platforms+=(--platform "$p"); done
echo "Fetching wheels for CPython 3.12 into $DEST/wheels: $(echo $requirements)"
for requirement in $requirements; do
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" --dest "$DEST/wheels" "$requirement" || fail "pip could not download a wheel of $requirement"
done
count=$(find "$DEST/wheels" -name '*.whl' | wc -l)
[ "$count" -eq "$(echo "$requirements" | wc -w)" ] || fail "expected one wheel per requirement, found $count"

for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [ -f "$FMNIST/$f.gz" ]; then
    cp "$FMNIST/$f.gz" "$DEST/fashion-mnist/"
  else
    fail "$FMNIST/$f.gz not found: 'sudo apt-get install dataset-fashion-mnist', or set FASHION_MNIST_DIR"
  fi
done
cat >"$DEST/README.txt" <<EOF
Made by scripts/prepare_device.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ): the wheels and Fashion-MNIST files that
scripts/device_check.sh installs and reads on an accelerator machine without a network. Carry this folder.
EOF

bytes() { du -sb "$@" | awk '{s += $1} END {print s + 0}'; }
folder=$(bytes "$DEST")
# The rest of what travels with it: the tracked files and the untracked ones git does not ignore.
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
echo "$DEST/: $(mib "$folder") MiB (wheels $(mib "$(bytes "$DEST/wheels")") MiB in $count files, Fashion-MNIST" \
  "$(mib "$(bytes "$DEST/fashion-mnist")") MiB); with the working tree ($(mib "$tree") MiB): $(mib $((folder + tree))) MiB" \
  "of the $LIMIT_MIB MiB that may travel"
if [ $((folder + tree)) -gt $((LIMIT_MIB * 1048576)) ]; then
  fail "$DEST/ and the working tree take $(mib $((folder + tree))) MiB, over the $LIMIT_MIB MiB that may travel"
fi
