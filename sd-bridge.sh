#!/usr/bin/env bash
# sd-bridge in one command, on Linux and macOS.
#   ./sd-bridge.sh run [options of `sd-bridge run`]   install into ./.venv, then run the daemon
#   ./sd-bridge.sh test [pytest options]              install with the test tools, then lint and test
#   ./sd-bridge.sh <any sd-bridge command> ...        install, then run that command (doctor, bench, send...)
# The first call creates ./.venv and installs; later calls reinstall only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")"

cmd="${1:-run}"
[ $# -gt 0 ] && shift

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "sd-bridge needs Python 3.10 or newer; set PYTHON=/path/to/python3.x" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$python" -m venv .venv
fi

extras="ndi,vcam"
[ "$cmd" = "test" ] && extras="dev,ndi,vcam"
stamp=".venv/.sd-bridge-installed-$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing sd-bridge[$extras] into .venv (first time: a few minutes)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[$extras]"
    touch "$stamp"
fi

case "$cmd" in
    test)
        .venv/bin/ruff check .
        .venv/bin/ruff format --check .
        exec .venv/bin/python -m pytest "$@"
        ;;
    *)
        exec .venv/bin/sd-bridge "$cmd" "$@"
        ;;
esac
