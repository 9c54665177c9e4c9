#!/bin/bash
# runs simulations strictly one at a time
cd "$(dirname "$0")"
# usage: LARVAWORLD_PYTHON=/path/to/venv-with-larvaworld/bin/python SEEDS="1 2 ..." ./run_all.sh a b c c0
mkdir -p logs
for cond in "$@"; do
  for s in ${SEEDS:-1 2 3 4 5 6 7 8 9 10}; do
    if [ -f runs.csv ] && grep -q "^$cond,$s," runs.csv; then continue; fi
    echo "=== $cond seed $s $(date +%T)"
    nice -n 19 "${LARVAWORLD_PYTHON:?set LARVAWORLD_PYTHON}" run_one.py $cond $s > logs/${cond}_$s.log 2>&1 || echo "FAILED $cond $s"
    tail -1 logs/${cond}_$s.log | cut -c1-200
  done
  echo "=== condition $cond done $(date +%T)"
done
