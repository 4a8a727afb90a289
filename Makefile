# Two commands on a fresh machine (see README):
#   make demo   – run examples/quickstart.ipynb headless from its recording (no key, no network)
#   make test   – lint, type-check and run the whole test suite (installs what it needs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench lint record-examples clean

$(VENV)/installed-%: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$*]"
	touch $@

demo: $(VENV)/installed-examples
	$(PY) scripts/run_quickstart.py

lint: $(VENV)/installed-test
	$(PY) -m ruff check deepinfra_magic tests bench scripts
	$(PY) -m ruff format --check deepinfra_magic tests bench scripts
	$(PY) -m mypy

test: lint
	scripts/ensure-chromium
	$(PY) -m pytest

bench: $(VENV)/installed-bench
	$(PY) -m bench.run

record-examples: $(VENV)/installed-test
	$(PY) scripts/record_examples.py

clean:
	rm -rf $(VENV) build test-artifacts .pytest_cache .mypy_cache .ruff_cache
