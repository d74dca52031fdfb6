# Two targets matter: `make run` (the main job: train.py on the embedded synthetic world)
# and `make test` (the test suite; `make test-slow` runs the tests marked slow, CI both).
# Each creates .venv and installs drugjax into it on first use; the install is redone
# only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-slow coverage bench clean

# pytest-xdist workers: one per core on the 2-core machines this is measured on
# (docs/testing.md); each test file runs whole in one worker, so a module's fixtures are
# built once. TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# PYTHONWARNINGS=ignore: setuptools warns on every editable install about folders named
# like the package; this checkout is the package, and the banner is noise in make's output.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -e ".[dev,sweep]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) train.py $(ARGS)

test: $(STAMP)
	$(PYTEST)

test-slow: $(STAMP)
	$(PYTEST) -m slow

# Line coverage of drugjax/ over the default and slow sets together (subprocesses too).
coverage: $(STAMP)
	$(PYTEST) -m "slow or not slow" --cov=drugjax --cov-report=term-missing:skip-covered --cov-report=html:build/coverage

bench: $(STAMP)
	$(PY) bench/backbone.py

clean:
	rm -rf $(VENV)
