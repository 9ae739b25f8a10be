#!/usr/bin/env bash
# `make test`'s pytest step: the tests in two lanes side by side (`--lane`, see
# tests/conftest.py). The lane of the shared stack, the end-to-end and the unit tests
# prints as it goes; the other lane (integration tests that start their own stacks) is
# logged and printed after. Fails if either lane failed.
set -u
python=${1:-.venv/bin/python}
options=(-m pytest -p no:cacheprovider -q -ra --durations=15)
log=$(mktemp -t pytest-lane-own.XXXXXX)
"$python" "${options[@]}" --lane own >"$log" 2>&1 &
own=$!
trap 'kill -INT "$own" 2>/dev/null; wait "$own"; rm -f "$log"; exit 130' INT TERM
"$python" "${options[@]}" --lane shared
shared_status=$?
wait "$own"
own_status=$?
echo "===== lane 'own': integration tests with stacks of their own ====="
cat "$log"
rm -f "$log"
echo "lane 'shared' exit status $shared_status, lane 'own' exit status $own_status"
[ "$shared_status" -eq 0 ] && [ "$own_status" -eq 0 ]
