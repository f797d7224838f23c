#!/usr/bin/env bash
# The installed-wheel smoke (`make test-installed`): the wheel built from this checkout (through its sdist, as `upload
# code` builds it), installed NON-editable into a fresh virtualenv outside the checkout, runs the local flow from an
# empty folder with no source checkout on the path.
# Usage: .ci/installed_smoke.sh BUILD_PYTHON VENV_PYTHON [pip options for torch, e.g. --index-url URL]
# BUILD_PYTHON: the checkout's venv. It builds the wheel, and its installed versions constrain the fresh venv's (torch
# first, pinned: an unpinned torch on Linux x86_64 is the multi-GB CUDA build; the rest come from pip's cache of what
# that venv installed; --no-compile: imports compile what they use). VENV_PYTHON makes the fresh venv.
set -euo pipefail
checkout=$(cd "$(dirname "$0")/.." && pwd)
build_python=$1
venv_python=$2
torch_options=("${@:3}")
start=$SECONDS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kk-installed.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

torch_version=$("$build_python" -c "import torch; print(torch.__version__)")
PYTHONPATH=$checkout "$build_python" -m kaggle_kit.kernel.own_wheel "$tmp/dist" >/dev/null
wheel=$(ls "$tmp"/dist/*.whl)
version=$(basename "$wheel" | cut -d- -f2)
"$venv_python" -m venv "$tmp/venv"
"$build_python" -m pip freeze --exclude-editable | grep -v -i '^kaggle[-_]kit' >"$tmp/constraints.txt"
pip_quiet() {
    "$tmp/venv/bin/python" -m pip install -q --no-compile "$@" >"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log" >&2; exit 1; }
}
pip_quiet "${torch_options[@]}" "torch==$torch_version"
pip_quiet -c "$tmp/constraints.txt" "$wheel"
installed=$SECONDS

unset PYTHONPATH
export PATH="$tmp/venv/bin:$PATH" HOME="$tmp/home" HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
mkdir -p "$HOME" "$tmp/work"
cd "$tmp/work"
where=$(python -c "import kaggle_kit; print(kaggle_kit.__file__)")
case "$where" in
    "$tmp/venv/"*) ;;
    *) echo "smoke: kaggle_kit imported from $where, not from the installed wheel" >&2; exit 1 ;;
esac
shown=$(kaggle-kit --version)
if [ "$shown" != "kaggle-kit, version $version" ]; then
    echo "smoke: kaggle-kit --version says '$shown', the wheel is $version" >&2
    exit 1
fi

step() { echo "smoke: kaggle-kit $*"; kaggle-kit "$@" >"$tmp/step.log" 2>&1 || { cat "$tmp/step.log" >&2; exit 1; }; }
step init --username tester
step sample-data data --rows 200
step tiny-backbone tiny-deberta-v3
step train --train data/train.csv --backbone tiny-deberta-v3 --out run/model --max-len 96 --max-steps 4 --eval-steps 2
step predict --test data/test.csv --model run/model --out sub.csv
step validate sub.csv --test data/test.csv
step build-kernel train --backbone tester/tiny-deberta-v3 --out kb/train
step build-kernel infer --backbone tester/tiny-deberta-v3 --out kb/infer
step run-kernel kb/infer --input lmsys-chatbot-arena=data --input tiny-deberta-v3=tiny-deberta-v3 \
    --input lmsys-train=run --working work-infer
step validate work-infer/submission.csv --test data/test.csv
# From an installed kaggle-kit, upload code ships the wheel it was installed from (repacked; a dry run sends nothing).
step upload code --dataset tester/kaggle-kit-code --dry-run --json
if ! grep -q "\"$(basename "$wheel")\"" "$tmp/step.log"; then
    cat "$tmp/step.log" >&2
    echo "smoke: upload code --dry-run did not stage $(basename "$wheel")" >&2
    exit 1
fi
echo "installed smoke: passed in $((SECONDS - start)) s (build + install $((installed - start)) s;" \
    "wheel $(($(stat -c %s "$wheel") / 1024)) KiB; kaggle_kit from $where)"
