#!/usr/bin/env bash
# One command that sets up (scripts/setup.sh) and runs the whole test suite, in two pytest-xdist
# workers (the subprocess tests spend much of their time starting up; two keep both cores busy). With
# --dist worksteal a worker that runs out of tests takes pending ones from the other, so the minutes-long
# tests near the end of a file do not leave one core idle.
# --durations=25 lists the slowest tests at the end, so a CI log says where the suite's time went.
# Extra arguments go to pytest, e.g. ./test.sh -m "not slow", or ./test.sh -n 0 for one process.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m pytest -ra -n 2 --dist worksteal --durations=25 "$@"
