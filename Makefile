# The two commands: `make run` and `make test`. Both create .venv and install everything,
# at the exact versions (and hashes) of requirements.lock, so a release elsewhere cannot
# break them. `make lock` regenerates the lock from pyproject.toml + requirements.in.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
STAMP := $(VENV)/.installed
DATASET ?= sample_data
PORT ?= 8501
# The lock's own tool, pinned like everything else; it lives in a venv of its own.
UV := uv==0.13.8
LOCKVENV := .venv-lock
# `make lock UPGRADE=1` moves every pin to the newest release the ranges allow;
# plain `make lock` keeps the current pins and only adds or drops what pyproject.toml changed.
UPGRADE ?=
LATEST := .venv-latest

.PHONY: run test venv lock test-latest bench sample clean

$(STAMP): $(LOCK) pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r $(LOCK) --log $(VENV)/install.log
	$(BIN)/python -m pip check
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/streamlit run app.py --server.headless true \
	  --server.address 127.0.0.1 --server.port $(PORT) --server.fileWatcherType none \
	  -- --dataset $(DATASET)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lock:
	test -x $(LOCKVENV)/bin/uv || ($(PYTHON) -m venv $(LOCKVENV) && $(LOCKVENV)/bin/pip install -q $(UV))
	$(LOCKVENV)/bin/uv pip compile pyproject.toml requirements.in --extra test \
	  --universal --python-version 3.11 --generate-hashes $(if $(UPGRADE),--upgrade) \
	  --custom-compile-command "make lock" -o $(LOCK)

# Not in CI: the suite against the newest releases the ranges in pyproject.toml allow, in a
# venv of its own, so that a release that breaks the project is seen before a user sees it.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q --upgrade -r requirements.in -e '.[test]'
	$(LATEST)/bin/python -m pip freeze --exclude-editable > $(LATEST)/versions.txt
	@echo "versions differing from $(LOCK):"
	@$(LATEST)/bin/python tools/pins_diff.py $(LOCK) $(LATEST)/versions.txt
	HF_HUB_OFFLINE=1 $(LATEST)/bin/python -m pytest -q -p no:cacheprovider

sample: $(STAMP)
	$(BIN)/python -m qa.sample sample_data

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(LOCKVENV) $(LATEST) .pytest_cache artifacts
