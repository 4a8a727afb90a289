# Two commands on a fresh machine (see README):
#   make demo   – run examples/quickstart.ipynb headless from its recording (no key, no network)
#   make test   – lint, type-check and run the whole test suite (installs what it needs)
#   make lite   – build the zero-install JupyterLite site of the examples into build/lite/
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# llama-cpp-python (the llama extra) builds from its sdist: CPU only, no tools or examples,
# no download at run time; pip's cache keeps the wheel, so later installs are quick.
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF -DGGML_OPENMP=OFF

.PHONY: demo test bench lint record-examples lite clean

$(VENV)/installed-%: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$*]"
	touch $@

# The real llama.cpp server of tests/llama and the bench, built with the tools it needs.
# (llama.cpp's native llama-server, from the same sdist, is built and cached by
# scripts/ensure-llama-server, which `make test` runs: minutes once, then instant.)
$(VENV)/installed-llama: pyproject.toml
	scripts/ensure-build-tools
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 \
		$(PY) -m pip install --quiet -e ".[llama]"
	touch $@

demo: $(VENV)/installed-examples
	$(PY) scripts/run_quickstart.py

lint: $(VENV)/installed-test
	$(PY) -m ruff check deepinfra_magic tests bench scripts
	$(PY) -m ruff format --check deepinfra_magic tests bench scripts
	$(PY) -m mypy

test: lint $(VENV)/installed-llama $(VENV)/installed-g4f
	scripts/ensure-chromium
	scripts/ensure-node
	scripts/ensure-llama-server $(PY) >/dev/null
	scripts/ensure-litellm >/dev/null
	$(PY) -m pytest

bench: $(VENV)/installed-bench $(VENV)/installed-llama
	$(PY) -m bench.run

# Serve it with: python3 -m http.server -d build/lite  (PyPI and npm only; see README)
lite:
	$(PYTHON) scripts/build_lite.py

record-examples: $(VENV)/installed-test
	$(PY) scripts/record_examples.py

clean:
	rm -rf $(VENV) build test-artifacts .pytest_cache .mypy_cache .ruff_cache
