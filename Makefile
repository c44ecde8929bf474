# Two entry points a new machine needs: `make demo` and `make test`.
# Both create .venv on first use; torch is pinned to the local CPU build. `make demo` installs
# only the package and torch (DEMO_STAMP); `make test` adds the development stack on top
# (STAMP): a first `make demo` never waits for mypy, moto or dask.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
DEMO   := build/demo
TORCH  := torch==2.13.0

.PHONY: demo test check lint typecheck unit integration extras sanitize compat coverage clean policy

# The package (editable, compiled core built in place) and the pinned torch: all `make demo` needs.
$(DEMO_STAMP): pyproject.toml setup.py $(wildcard src/ckptaudit/pickle/*.[ch]) \
               src/ckptaudit/_version.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e . $(TORCH)
	touch $(DEMO_STAMP)

$(STAMP): $(DEMO_STAMP) requirements-dev.txt
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

demo: $(DEMO_STAMP)
	@mkdir -p $(DEMO)
	$(PY) -m ckptaudit demo morphogenetic -o $(DEMO)/morphogenetic-legacy.pt
	$(PY) -m ckptaudit demo morphogenetic --fixed -o $(DEMO)/morphogenetic-fixed.pt
	@echo "== the checkpoint as the research code saves it today =="
	@$(PY) -m ckptaudit audit $(DEMO)/morphogenetic-legacy.pt || \
	  echo "(exit status $$?: weights_only=True fails on it, as expected; every path is listed above)"
	@echo "== the same model after the fix (state as primitives) =="
	$(PY) -m ckptaudit audit $(DEMO)/morphogenetic-fixed.pt

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests tools scripts benchmarks
	$(VENV)/bin/ruff format --check tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The suite runs twice: with the compiled dispatch loop (which must have been built) and
# with the pure-Python one that machines without a C compiler use. Tests marked `once` (the
# command line, reports and torch's loader in new processes: nothing of the core) run in the
# first pass only.
unit: $(STAMP)
	CKPTAUDIT_REQUIRE_COMPILED=1 $(PY) -m pytest -q
	CKPTAUDIT_PURE_PYTHON=1 $(PY) -m pytest -q -m "not integration and not extras and not once"

# Tests that drive the real tools (build, twine, pip into fresh venvs, pre-commit) in temp
# dirs: about a minute and a half, so they run once here, not in both core runs above.
integration: $(STAMP)
	$(PY) -m pytest -q -m integration tests/integrations

# Each extra installed alone in a fresh venv ([torch] pinned to 2.13.0): minutes; not in test.
extras: $(STAMP)
	$(PY) -m pytest -q -m extras tests/integrations

# The compiled core again, built with AddressSanitizer/UBSan, on hostile and mutated input.
sanitize: $(STAMP)
	PY=$(PY) tools/sanitize.sh

# The torch-free tests on the other CPython versions this machine has (the C API differs).
compat: $(STAMP)
	tools/other_pythons.sh

test: lint typecheck unit integration sanitize compat

# The quick loop while editing (under a minute on two cores): lint, types, and the suite
# without the tests marked slow, on the compiled core. `make test` stays the full gate (CI).
check: lint typecheck
	CKPTAUDIT_REQUIRE_COMPILED=1 $(PY) -m pytest -q -p no:cacheprovider -m "not slow and not integration and not extras"

# Line coverage of the suite on the pure-Python core, where the emulator's Python code runs
# (the compiled core replaces its hot loop); the missing lines of checks/ and pickle/ are
# listed. Not part of `make test`: it measures, it does not gate.
coverage: $(STAMP)
	mkdir -p build && rm -f build/.coverage
	CKPTAUDIT_PURE_PYTHON=1 $(PY) -m coverage run -m pytest -q -p no:cacheprovider
	$(PY) -m coverage report
	$(PY) -m coverage report --show-missing --skip-covered \
	  --include='src/ckptaudit/checks/*,src/ckptaudit/pickle/*'

# Regenerate the torch policy table from the installed torch (see tools/gen_policy.py).
policy: $(STAMP)
	$(PY) tools/gen_policy.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
	find src -name '*.so' -delete
