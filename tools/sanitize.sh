#!/usr/bin/env bash
# Build the compiled core with AddressSanitizer and UndefinedBehaviorSanitizer and run the
# tests that feed it hostile, truncated and mutated pickles. A memory error in C code that
# parses untrusted files is a security bug, so this runs in `make test` wherever gcc ships
# the sanitizer runtimes (it skips with a message elsewhere).
#
# The sanitized build goes to a scratch copy of src/, so the normal build is left alone. It
# also compiles with -Wall -Wextra -Werror: a new compiler warning fails the build here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
CC="${CC:-gcc}"
ASAN_LIB="$($CC -print-file-name=libasan.so 2>/dev/null || true)"
if [[ -z "$ASAN_LIB" || ! -e "$ASAN_LIB" ]]; then
    echo "sanitize: no libasan for $CC here; skipped"
    exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp -r src "$WORK/src"
find "$WORK/src" -name '*.so' -delete
cp setup.py pyproject.toml README.md "$WORK/"
(
    cd "$WORK"
    CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1 -Wall -Wextra -Wno-unused-parameter -Werror" \
        "$OLDPWD/$PY" setup.py -q build_ext --inplace >/dev/null
)
# detect_leaks=0: CPython keeps interned objects alive at exit by design.
env LD_PRELOAD="$ASAN_LIB" \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    PYTHONPATH="$WORK/src" \
    CKPTAUDIT_REQUIRE_COMPILED=1 \
    CKPTAUDIT_SANITIZED=1 \
    "$PY" -m pytest -q -p no:cacheprovider \
        tests/pickle tests/checks/test_hostile_basic.py tests/audit/test_bombs.py tests/fuzz tests/audit/test_paths.py
