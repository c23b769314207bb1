# The two commands: `make run` and `make test`. Both create .venv and install everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch per DESIGN.md: this pair is the one that works with torchvision on these machines.
TORCH := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
DATASET ?= sample_data
PORT ?= 8501

.PHONY: run test venv bench sample clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/streamlit run app.py --server.headless true \
	  --server.address 127.0.0.1 --server.port $(PORT) --server.fileWatcherType none \
	  -- --dataset $(DATASET)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

sample: $(STAMP)
	$(BIN)/python -m qa.sample sample_data

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache artifacts
