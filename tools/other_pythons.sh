#!/usr/bin/env bash
# Build and test the package, compiled core included, on every other CPython that
# requires-python admits and this machine has (3.10, 3.12, 3.13 via pyenv or on PATH).
# The C core uses CPython's C API, which changes between versions; the torch-free part of
# the suite (the emulator on both cores, the hostile catalogue, bombs, cycles) runs on each.
# Versions not found are skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for version in 3.10 3.12 3.13; do
    python=""
    for candidate in "$HOME"/.pyenv/versions/"$version".*/bin/python "$(command -v "python$version" || true)"; do
        if [[ -n "$candidate" && -x "$candidate" ]] && "$candidate" -c pass 2>/dev/null; then
            python="$candidate"
            break
        fi
    done
    if [[ -z "$python" ]]; then
        echo "other-pythons: no Python $version here; skipped"
        continue
    fi
    venv="build/venv-py$version"
    if [[ ! -x "$venv/bin/python" ]]; then
        "$python" -m venv "$venv"
        "$venv/bin/pip" install -q --upgrade pip
        "$venv/bin/pip" install -q pytest hypothesis numpy
    fi
    "$venv/bin/pip" install -q --force-reinstall --no-deps .
    "$venv/bin/pip" install -q rich
    # The installed copy, not src/, must be the one tested.
    "$venv/bin/python" -c "import ckptaudit, sys; sys.exit('src/' in ckptaudit.__file__)"
    echo "== Python $version"
    # From the repository root, ckptaudit is imported from the venv (src/ is not on the path).
    if ! CKPTAUDIT_REQUIRE_COMPILED=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
            tests/pickle tests/audit/test_no_cycles.py tests/audit/test_bombs.py \
            tests/checks/test_hostile_catalogue.py tests/checks/test_hostile_basic.py; then
        status=1
    fi
done
exit $status
