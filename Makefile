# Set-up from pin and lock files, then the two things people do: run the demo, run the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test test-all bench artifacts lint clean

SLITHER_VENV ?= .venv-slither

install: $(VENV)/.installed ganache/node_modules/.installed $(SLITHER_VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Slither pins web3 below 8, so it gets an environment of its own (tests/contracts/test_slither.py).
$(SLITHER_VENV)/.installed: requirements-slither.lock
	python3 -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/pip install -q -r requirements-slither.lock
	touch $@

ganache/node_modules/.installed: ganache/package-lock.json ganache/package.json
	cd ganache && npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: install
	$(VENV)/bin/derelay demo

test: install
	$(VENV)/bin/pytest -q -n 2 $(PYTEST_ARGS)

test-all: install
	$(VENV)/bin/pytest -q -n 2 --slow $(PYTEST_ARGS)
	$(VENV)/bin/pytest -q -n 2 --slow --engine anvil tests/integration $(PYTEST_ARGS)

bench: install
	$(PY) -m bench

artifacts: install
	$(VENV)/bin/derelay compile

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(SLITHER_VENV) ganache/node_modules
