#!/usr/bin/env bash
# CI smoke run of the benchmark suite: a tiny run (200 jobs, 1 repeat, jobsys and Huey)
# that proves the harness still works end to end. It is not a benchmark: nothing in it
# is compared with a target. Without network access to build the Huey venv it runs
# jobsys alone and says so. Writes bench/results/smoke.{md,json,png} (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m bench --smoke "$@"
