#!/usr/bin/env bash
# Download, here (where the package index is reachable), the wheels gpu_check.sh installs on the
# GPU machine (which reaches nothing): torchtune 0.6.1 and what importing its models needs beyond
# that machine's image (its package list: /work/.library/device/KINDS.md; it has torch 2.11 with
# CUDA, pyarrow, pandas, huggingface_hub 1.x, tokenizers, sentencepiece, tiktoken, pyyaml).
#
#   tools/benchmarks/gpu_check_wheels.sh [DIR]     # default: .whl at the repository root
#
# Then carry DIR to the GPU machine and run tools/benchmarks/gpu_check.sh --wheels DIR there.
# The wheels are for CPython 3.12 on x86-64 Linux (that machine's Python).
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"
DIR="${1:-$ROOT/.whl}"
PY="${PYTHON:-python3}"
mkdir -p "$DIR"
# torchtune 0.6.1 itself, torchao 0.11.0 (its own benchmark pin; imported by torchtune/__init__),
# torchdata 0.11.0 (its pin), datasets with dill/multiprocess (torchtune.data imports datasets),
# omegaconf (torchtune.config)
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$DIR" \
  torchtune==0.6.1 torchao==0.11.0 torchdata==0.11.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
  omegaconf==2.3.0
# omegaconf's parser runtime is published as a source archive only: build its (pure Python) wheel
"$PY" -m pip wheel --quiet --no-deps -w "$DIR" antlr4-python3-runtime==4.9.3
ls -1 "$DIR"
du -sh "$DIR"
