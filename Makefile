# Two commands on a fresh clone: `make quickstart` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kaggle-kit-installed
# Where torch comes from when none is installed: empty = the default package index (on Linux x86_64 that is the CUDA
# build, several GB of nvidia-* wheels); https://download.pytorch.org/whl/cpu for the CPU-only build.
TORCH_INDEX_URL ?=
TORCH_INDEX := $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))

.PHONY: quickstart test test-fast test-real lint test-oldest test-installed test-gpu gpu-wheels bench bench-budget clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=77"  # pyproject's build requirement (own_wheel.py)
	# Keep a torch the user already has (e.g. CUDA); otherwise torch 2.13.0 from TORCH_INDEX_URL (see above).
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_INDEX) torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/kaggle-kit quickstart

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

# The fast layer: every test not marked slow (tests/conftest.py marks those that train, spawn processes or run
# kernels): about 400 tests in 2-3 minutes on 2 shared cores (docs/benchmarks.md); `make test` stays the whole suite.
test-fast: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" tests

# Opt-in, not in CI: MiniLM (downloaded once into .cache/real) trained and run on 200 arena-proxy rows.
test-real: $(STAMP)
	KKIT_REAL_TESTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m real tests/test_real.py

lint: $(STAMP)
	$(BIN)/ruff check .

# The oldest tested stack: torch==2.13.0 (CPU; older torch on PyPI is a multi-GB CUDA build, so its floor is checked
# outside CI) plus exactly setup.cfg's lower bounds, read from setup.cfg so they cannot drift. Then a stand-in for
# Kaggle's image (this venv without peft and bitsandbytes) and the kernel lock's wheels for the offline-install test.
OLD := .venv-oldest
OLD_STAMP := $(OLD)/.kaggle-kit-installed
IMAGE := .venv-kaggle-image
WHEEL_CACHE := .cache/kernel-wheels
# Core paths only (the CLI flow trains and predicts with TTA; resume; kernels run locally; the image stand-in; the
# length side head, fitted by scikit-learn; LoRA under gradient checkpointing, re-entrant by default on 4.x).
OLDEST_TESTS := tests/test_oldest.py tests/test_train.py::test_resume_ends_with_same_metrics \
	tests/test_kernels.py::test_train_and_infer_kernels_run_locally tests/test_side_head.py \
	tests/test_train.py::test_gradient_checkpointing_still_trains_lora

$(OLD_STAMP): setup.cfg pyproject.toml kaggle_kit/kernel/kernel.lock.toml
	rm -rf $(OLD) $(IMAGE)
	$(PYTHON) -m venv $(OLD)
	$(OLD)/bin/python -m pip install -q --upgrade pip "setuptools>=77"  # pyproject's build requirement (own_wheel.py)
	$(OLD)/bin/python -m pip install -q $(TORCH_INDEX) torch==2.13.0
	$(OLD)/bin/python .ci/lower_bounds.py --extra test --exclude torch > $(OLD)/lower-bounds.txt
	$(OLD)/bin/python -m pip install -q -r $(OLD)/lower-bounds.txt
	$(OLD)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	PYTHONPATH=. $(OLD)/bin/python -m kaggle_kit.kernel.wheels download $(WHEEL_CACHE) 3.11
	cp -al $(OLD) $(IMAGE)
	$(IMAGE)/bin/python -m pip uninstall -q -y peft bitsandbytes kaggle-kit
	touch $(OLD_STAMP)

test-oldest: $(OLD_STAMP)
	KK_IMAGE_PYTHON=$(CURDIR)/$(IMAGE)/bin/python KK_WHEEL_CACHE=$(CURDIR)/$(WHEEL_CACHE) \
		$(OLD)/bin/python -m pytest -q -p no:cacheprovider $(OLDEST_TESTS)

# kaggle-kit as a user installs it: the wheel (built through the sdist, as `upload code` builds it) installed
# non-editable into a fresh venv outside the checkout (torch pinned to .venv's, from TORCH_INDEX_URL), then init,
# sample-data, tiny-backbone, train, predict, validate, build-kernel train/infer and run-kernel from an empty folder.
test-installed: $(STAMP)
	.ci/installed_smoke.sh $(BIN)/python $(PYTHON) $(TORCH_INDEX)

# On a machine with a CUDA GPU (not in CI): tiny DeBERTa-v2/Llama/Gemma-2/Qwen2 trained in fp16 (forced, T4-like, on
# any GPU) and bf16 where the GPU has it, with gradient checkpointing, 4-bit QLoRA, predict with swap TTA, peak memory
# beside `plan train`, tokens/s against the notebook; each check in its own process. It runs in the box's own torch
# environment (GPU_PYTHON), first installing from GPU_WHEELS, offline and without dependencies, what that environment
# lacks (torch is never touched). Without CUDA it says so and exits 0, claiming nothing; exit 1 when nvidia-smi lists a
# GPU that torch cannot use. Report: .cache/gpu-check.json. With 2+ GPUs also: FSDP (and ZeRO-3 where deepspeed is
# installed) for a few steps under torchrun, and rank-sharded predict against one process (gpu_check_multi.py;
# fewer GPUs: one line, skipped). Report: .cache/gpu-check-multi.json.
GPU_PYTHON ?= python3
GPU_WHEELS ?= gpu-wheels
GPU_WHEELS_EXTRA ?=
test-gpu:
	PYTHONPATH=$(CURDIR) $(GPU_PYTHON) -m kaggle_kit.kernel.gpu_box install $(GPU_WHEELS)
	PYTHONPATH=$(CURDIR) $(GPU_PYTHON) -m kaggle_kit.evaluation.gpu_check --out .cache/gpu-check.json
	PYTHONPATH=$(CURDIR) $(GPU_PYTHON) -m kaggle_kit.evaluation.gpu_check_multi --out .cache/gpu-check-multi.json

# On a machine with the package index: the wheels an offline GPU box lacks (bitsandbytes, psutil, tqdm,
# sentencepiece, + GPU_WHEELS_EXTRA) for its Python 3.12 / manylinux x86_64, refused over 64 MiB. Copy GPU_WHEELS
# beside the checkout on the box and run `make test-gpu` there.
gpu-wheels: $(STAMP)
	PYTHONPATH=$(CURDIR) $(BIN)/python -m kaggle_kit.kernel.gpu_box download $(GPU_WHEELS) \
		$(if $(GPU_WHEELS_EXTRA),--extra $(GPU_WHEELS_EXTRA))

bench: $(STAMP)
	$(BIN)/kaggle-kit bench predict

# Issue 14's acceptance run: a budget halfway between no-TTA and full swap-TTA, measured as whole commands.
bench-budget: $(STAMP)
	KAGGLE_KIT_BENCH=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m bench tests/test_budget.py

clean:
	rm -rf $(VENV) $(OLD) $(IMAGE) .cache quickstart kernels/build
