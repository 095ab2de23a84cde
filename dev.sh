#!/usr/bin/env bash
# One entry point for people and CI: sets up what is missing, then runs.
#   ./dev.sh demo    run a simulated kit: hubs, an MQTT broker, the daemon, metrics (no hardware)
#   ./dev.sh test    lint, type-check and run the whole test suite
#   ./dev.sh test-under-load   the same pytest run, beside one CPU hog per core
#   ./dev.sh bench   the performance comparisons, written to docs/benchmarks.md (--quick: small)
#   ./dev.sh setup   only install (Python venv in .venv, system packages)
set -euo pipefail
cd "$(dirname "$0")"

VENV=${GATEWAYD_VENV:-.venv}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  # Installs Debian/Ubuntu packages only when one of them is missing.
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "dev.sh: please install: ${missing[*]} (no apt-get on this machine)" >&2
    exit 1
  fi
  echo "dev.sh: installing ${missing[*]} with apt-get" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

pick_python() {
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 &&
       "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  echo "dev.sh: gatewayd needs Python 3.11 or newer" >&2
  exit 1
}

setup() {
  local py
  py=$(pick_python)
  if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    "$py" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # demo: the embedded broker of ./dev.sh demo; test: the test tools. A kit installs neither.
    "$VENV/bin/python" -m pip install -q -e '.[demo,test]'
    touch "$stamp"
  fi
}

setup_test_tools() {
  # A real broker for the MQTT tests, and openssl to make their TLS certificates.
  command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || apt_install mosquitto
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  # promtool and systemd-analyze, to prove the metrics, alert rules and unit with the real tools.
  ./.ci/ops-tools
}

case "${1:-}" in
  setup)
    setup ;;
  demo)
    setup
    shift
    exec "$VENV/bin/gatewayd" demo "$@" ;;
  test)
    setup
    setup_test_tools
    shift
    echo "== ruff" >&2
    "$VENV/bin/ruff" check gatewayd drivers hw-fixtures tests bench
    "$VENV/bin/ruff" format --check gatewayd drivers hw-fixtures tests bench
    echo "== mypy --strict" >&2
    "$VENV/bin/mypy" --strict gatewayd drivers/gatewayd_drivers
    echo "== import-linter: the layers hold (pyproject.toml [tool.importlinter])" >&2
    "$VENV/bin/lint-imports" --no-cache
    echo "== MQTT contract files (docs/schemas, docs/asyncapi.yaml) up to date" >&2
    "$VENV/bin/python" -m gatewayd.contract.schema_export --check
    echo "== pytest" >&2
    exec "$VENV/bin/pytest" "$@" ;;
  test-under-load)
    # Only pytest: the lint and type checks do not depend on timing.
    setup
    setup_test_tools
    shift
    echo "== pytest beside one CPU hog per core" >&2
    GATEWAYD_HOG_PYTHON="$VENV/bin/python" exec ./tests/under_load.sh "$VENV/bin/pytest" "$@" ;;
  bench)
    # A real broker for the latency and drain comparisons; zigpy-znp (a test extra) as the
    # MT decode peer.
    setup
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || apt_install mosquitto
    shift
    exec "$VENV/bin/python" -m bench "$@" ;;
  *)
    echo "usage: ./dev.sh demo | test [pytest args] | test-under-load [pytest args] | bench [--quick] | setup" >&2
    exit 2 ;;
esac
