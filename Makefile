# Two commands on a fresh clone: `make quickstart` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kaggle-kit-installed

.PHONY: quickstart test test-real lint bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# Keep a torch the user already has (e.g. CUDA); otherwise the CPU build, never an accidental CUDA download.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/kaggle-kit quickstart

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

# Opt-in, not in CI: MiniLM (downloaded once into .cache/real) trained and run on 200 arena-proxy rows.
test-real: $(STAMP)
	KKIT_REAL_TESTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m real tests/test_real.py

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/kaggle-kit bench predict

clean:
	rm -rf $(VENV) quickstart kernels/build
