#!/usr/bin/env bash
# The prepared GPU check (issue 13): on a CUDA machine, run the //:gpu tests' files with plain
# pytest (no Bazel there), then benchmark LoRA and full fine-tuning of a Llama-3.2-1B-shaped
# random model in bf16 on the shipped variable-length instruction data, for this library and
# for torchtune 0.6.1, and print one table: real tokens/s, MFU against the bf16 matmul peak
# measured in the same run, peak GPU memory. Ours runs its fast path (padding-free rows padded to
# 128 tokens, compiled layers, flex attention); torchtune 0.6.1 its defaults (padded batches,
# eager). Also times document attention on one padding-free row (per-document SDPA, flex, varlen).
# Sized to finish in under 8 minutes: pytest 150 s, attention 90 s, the fine-tuning benchmark 300 s.
#
#   tools/benchmarks/gpu_check.sh [--dry-run] [--wheels DIR] [--out DIR]
#
# --wheels DIR  wheels of torchtune 0.6.1 and what it needs beyond the GPU machine's image
#               (tools/benchmarks/gpu_check_wheels.sh downloads them; default .whl). They are
#               installed from the local files only (pip --no-index) into a folder of their own,
#               which only the 0.6.1 runs see. Without them the 0.6.1 rows are left out.
# --out DIR     where bench.json and the logs go (default $OUT, else /tmp/gpu_check).
# --dry-run     the whole script on CPU with the tiny model, one timed step, no compile: a
#               rehearsal for machines without a GPU (tools/benchmarks/gpu_check_test.py).
#
# PYTHON names the interpreter (default python3). Without CUDA (and without --dry-run) the
# script stops at once with one line and exit status 1.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"
PY="${PYTHON:-python3}"
DRY=0
WHEELS="$ROOT/.whl"
OUTDIR="${OUT:-/tmp/gpu_check}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --wheels) WHEELS="$2"; shift ;;
    --out) OUTDIR="$2"; shift ;;
    *) echo "gpu_check: unknown argument $1 (use --dry-run, --wheels DIR, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$DRY" = 0 ] && ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU visible to $PY here; nothing to check (--dry-run rehearses it on CPU)"
  exit 1
fi
mkdir -p "$OUTDIR"
START=$(date +%s)
stage() { echo "== gpu_check [$(( $(date +%s) - START ))s] $*"; }

# ----- torchtune 0.6.1 from local wheels, into its own folder ------------------------------
REF_ARGS=()
if ls "$WHEELS"/torchtune-0.6.1-*.whl >/dev/null 2>&1; then
  stage "installing torchtune 0.6.1 from $WHEELS (local files only)"
  REF_SITE="$OUTDIR/tt061-site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$REF_SITE" "$WHEELS"/*.whl
  REF_ARGS=(--reference-python "$PY" --reference-pythonpath "$REF_SITE")
else
  stage "no torchtune-0.6.1 wheel in $WHEELS: the torchtune 0.6.1 rows are left out"
fi

# ----- the //:gpu tests' files, with plain pytest -------------------------------------------
mapfile -t GPU_TESTS < <("$PY" - "$ROOT" <<'PYEOF'
import pathlib, re, sys
root = pathlib.Path(sys.argv[1])
for build in sorted((root / "tests").rglob("BUILD.bazel")):
    for target in re.findall(r"pytest_test\((.*?)\n\)", build.read_text(), flags=re.S):
        if re.search(r'tags\s*=\s*\[[^\]]*"gpu"', target):
            for src in re.findall(r'srcs\s*=\s*\[\s*"([^"]+)"', target):
                print(build.parent / src)
PYEOF
)
if [ "${#GPU_TESTS[@]}" = 0 ]; then
  echo "gpu_check: no test target tagged gpu under $ROOT/tests" >&2
  exit 1
fi
stage "pytest: ${GPU_TESTS[*]}"
TESTS_RC=0
( cd "$ROOT" && PYTHONPATH="$ROOT" timeout 150 "$PY" -m pytest -q -p no:cacheprovider --import-mode=importlib \
    "${GPU_TESTS[@]}" 2>&1 | tee "$OUTDIR/pytest.log" ) || TESTS_RC=$?

# ----- document attention: per-document SDPA, flex, varlen on one padding-free row ----------
if [ "$DRY" = 1 ]; then ATTN=(--device cpu --samples 4 --repeats 2 --no-compile); else ATTN=(--device cuda --samples 64); fi
stage "document attention: bench_document_attention.py ${ATTN[*]}"
( cd "$ROOT" && timeout 90 "$PY" -W ignore tools/benchmarks/bench_document_attention.py "${ATTN[@]}" 2>&1 \
    | tee "$OUTDIR/attention.log" | grep -E "^(\||row)" ) || stage "document attention benchmark failed (see $OUTDIR/attention.log)"

# ----- the benchmark ------------------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  BENCH=(--device cpu --cases tiny:lora tiny:full --dtypes fp32 --steps 1 --warmup 1 --batch-size 4 --peak-n 256)
else
  BENCH=(--device cuda --cases llama3.2-1B:lora llama3.2-1B:full --dtypes bf16 --compile
         --pad-to-multiple-of 128 --batch-size 64 --steps 4 --warmup 2)  # 384 of the 400 shipped samples
fi
stage "benchmark: bench_finetune.py ${BENCH[*]} ${REF_ARGS[*]:-}"
( cd "$ROOT" && timeout 300 "$PY" tools/benchmarks/bench_finetune.py "${BENCH[@]}" --impls ours "${REF_ARGS[@]}" \
    --json "$OUTDIR/bench.json" 2>&1 | tee "$OUTDIR/bench.log" ) || { stage "benchmark failed (see $OUTDIR/bench.log)"; exit 1; }

stage "table"
( cd "$ROOT" && "$PY" tools/benchmarks/bench_finetune.py --from-json "$OUTDIR/bench.json" --table | grep -v "^ " )
if [ "$TESTS_RC" != 0 ]; then
  stage "the GPU tests failed (exit $TESTS_RC, see $OUTDIR/pytest.log)"
  exit 1
fi
stage "done"
