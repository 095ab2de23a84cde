#!/usr/bin/env bash
# Runs a command (by default the pytest suite) beside one busy CPU hog per core, to prove that
# the tests wait on events and not on wall time: on a loaded CI runner or kit, every timer and
# every answer comes late, and a test that only passes on an idle machine is a flaky test.
#   tests/under_load.sh [COMMAND [ARGS...]]     (./dev.sh test-under-load calls it with pytest)
# GATEWAYD_LOAD_HOGS sets the number of hogs (default: one per core, from nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

hog_count=${GATEWAYD_LOAD_HOGS:-$(nproc)}
python=${GATEWAYD_HOG_PYTHON:-python3}
[ $# -gt 0 ] || set -- "${GATEWAYD_VENV:-.venv}/bin/pytest"

hogs=()
stop_hogs() {
  [ ${#hogs[@]} -eq 0 ] && return 0
  kill "${hogs[@]}" 2>/dev/null || true
  wait "${hogs[@]}" 2>/dev/null || true
}
trap stop_hogs EXIT
# An interrupt still ends in the EXIT trap, so no hog outlives the run.
trap 'exit 130' INT
trap 'exit 143' TERM

# Pure Python needs nothing installed. Each hog also watches its parent, so that even a
# SIGKILLed runner (whose traps cannot run) leaves no hog spinning for long.
hog_code='
import os
parent = os.getppid()
while os.getppid() == parent:
    for _ in range(2_000_000):
        pass
'
for _ in $(seq "$hog_count"); do
  "$python" -c "$hog_code" &
  hogs+=("$!")
done
echo "under_load: $hog_count CPU hogs running (pids ${hogs[*]}): $*" >&2

status=0
"$@" || status=$?
exit "$status"
