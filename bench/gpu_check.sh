#!/usr/bin/env bash
# The prepared GPU check (issue 20): figures into OUT as each part finishes, so a cut run
# still reports. On the project's GPU machine (Python 3.12, torch CUDA, transformers,
# accelerate, peft; no network) the packages it lacks travel as cp312 wheels in .whl/
# (see /work/.library/device/README.md): gymnasium, cloudpickle, farama-notifications, pyyaml,
# tqdm, trl, datasets' needs are not used; the embedded model's tokenizer travels as
# .cache-agentgym/models/smollm2-135m-instruct (config.json and the tokenizer files only),
# for the tiny model's loop.
#   bash bench/gpu_check.sh OUT          # on a GPU
#   bash bench/gpu_check.sh --cpu OUT    # the smoke mode, in the test suite
set -euo pipefail
cd "$(dirname "$0")/.."
mode=()
if [ "${1:-}" = "--cpu" ]; then mode=(--cpu); shift; fi
out="${1:-${OUT:-runs/gpu_check}}"
mkdir -p "$out"
if [ -d .whl ] && [ -z "${mode[*]}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
if [ -d .cache-agentgym ]; then export AGENTGYM_CACHE=$PWD/.cache-agentgym; fi
py=python3
if [ -x .venv/bin/python ]; then py=.venv/bin/python; fi
export PYTHONUNBUFFERED=1
exec "$py" bench/gpu_check.py "${mode[@]}" --out "$out"
