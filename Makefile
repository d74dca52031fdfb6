# Two targets matter: `make run` (the main job: train.py on the embedded synthetic world)
# and `make test` (the whole test suite).
# Each creates .venv and installs drugjax into it on first use; the install is redone
# only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,sweep]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) train.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/backbone.py

clean:
	rm -rf $(VENV)
