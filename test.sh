#!/usr/bin/env bash
# One command that sets up (scripts/setup.sh) and runs the whole test suite, in three pytest-xdist
# workers on this project's 2-core machine: the command-line and notebook tests leave a core idle while a
# process starts up or a test waits for the moment to kill it, and a third worker fills it (2026-12-04, 2-core
# AMD EPYC, warm cache: 792 s with two workers, 698 s with three; the CPUs then idle under 2% of the run; 565 s
# on 2026-12-05 with cheaper checkpoints and collections).
# With --dist worksteal a worker that runs out of tests takes pending ones from the others, so the
# minutes-long tests near the end of a file do not leave a core idle.
# --durations=25 lists the slowest tests at the end, so a CI log says where the suite's time went.
# Extra arguments go to pytest, e.g. ./test.sh -m "not slow", or ./test.sh -n 0 for one process.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m pytest -ra -n 3 --dist worksteal --durations=25 "$@"
