#!/usr/bin/env bash
# GPU check of linear_ext's CUDA kernels, for a machine with an NVIDIA GPU (written for an H100),
# run from anywhere; works on the repository that contains this script. Within ~8 minutes:
#   1. build       the extension in place for sm_90 (TORCH_CUDA_ARCH_LIST, MAX_JOBS overridable)
#   2. tests       every CUDA test (test_cuda_kernels.py and the cuda-parametrized cases of the
#                  other suites: parity over dtypes/layouts/odd shapes, gradcheck fp64, opcheck,
#                  determinism, graphs, streams), junit XML + log
#   3. memcheck    compute-sanitizer --tool memcheck over scripts/cuda_kernel_paths.py
#   4. racecheck   compute-sanitizer --tool racecheck over the same script
#   5. bench       bench/bench_linear.py --device cuda --suite cuda-targets (float32, TF32,
#                  bfloat16, float16) → JSON, with a summary of the target rows
# Results go to $OUT (default ./gpu_results): one log per step, junit.xml, bench.json, summary.txt.
# Exits non-zero if any step fails or times out. Environment: PYTHON (default python3),
# CHECK_BUDGET_S (default 470: total seconds; each step's timeout is capped by what is left).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RESULTS="${OUT:-$ROOT/gpu_results}"
mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
PY="${PYTHON:-python3}"
BUDGET="${CHECK_BUDGET_S:-470}"
START=$(date +%s)
FAILED=0
SUMMARY="$RESULTS/summary.txt"
: > "$SUMMARY"

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

note() { echo "$*" | tee -a "$SUMMARY"; }

# run_step NAME LIMIT_S CMD...: runs CMD with its output in $RESULTS/NAME.log, under `timeout`
# (the smaller of LIMIT_S and the budget left), and records the outcome and the time taken.
run_step() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - ($(date +%s) - START)))
  if ((left < 15)); then
    note "$(printf '%-10s SKIPPED (time budget spent)' "$name")"
    FAILED=1
    return 0
  fi
  ((limit > left)) && limit=$left
  echo "== $name (limit ${limit}s): $*"
  local t0 rc
  t0=$(date +%s)
  set +e
  timeout --kill-after=10 "$limit" "$@" > "$RESULTS/$name.log" 2>&1
  rc=$?
  set -e
  local dt=$(($(date +%s) - t0))
  if ((rc == 0)); then
    note "$(printf '%-10s ok      %4ss' "$name" "$dt")"
  else
    local why="rc=$rc"
    ((rc == 124 || rc == 137)) && why="TIMEOUT after ${limit}s"
    note "$(printf '%-10s FAILED  %4ss  %s  (see %s.log)' "$name" "$dt" "$why" "$name")"
    tail -n 40 "$RESULTS/$name.log" || true
    FAILED=1
  fi
  return 0
}

{
  echo "linear_ext GPU check, $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi unavailable"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name())'
  command -v nvcc > /dev/null && nvcc --version | tail -n 1
  "$PY" -c 'import ninja' 2> /dev/null || echo "warning: ninja missing, the build will be serial"
} 2>&1 | tee "$RESULTS/environment.txt"

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  note "no usable CUDA GPU on this machine: nothing to check"
  exit 1
fi

# 1. Build in place (only the in-place library is imported below: PYTHONPATH=$ROOT).
run_step build 240 env TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-16}" \
  "$PY" setup.py build_ext --inplace
if ! "$PY" -c 'import linear_ext, sys; sys.exit(0 if linear_ext.WITH_CUDA else 1)' >> "$RESULTS/build.log" 2>&1; then
  note "build did not produce CUDA kernels; stopping"
  exit 1
fi

# 2. CUDA tests: test_cuda_kernels.py plus every case of the other suites whose id names cuda.
run_step tests 180 "$PY" -m pytest -q -rs -p no:cacheprovider tests -k cuda \
  --junitxml="$RESULTS/junit.xml" -o junit_family=xunit2

# 3-4. Sanitizers over one run of every kernel path on tiny shapes.
# Some sandboxed runtimes (gVisor) refuse the sanitizers: reported, not counted as a kernel failure.
sanitize() {
  local tool=$1
  shift
  local before=$FAILED
  run_step "$tool" 90 compute-sanitizer --tool "$tool" --error-exitcode 1 --print-limit 20 \
    "$PY" scripts/cuda_kernel_paths.py "$@"
  if ((FAILED != before)) && grep -q "Device not supported" "$RESULTS/$tool.log"; then
    note "$tool: compute-sanitizer does not support this machine's GPU runtime; not counted as a failure"
    FAILED=$before
  fi
}
if command -v compute-sanitizer > /dev/null; then
  sanitize memcheck
  # Shared-memory hazards: the cp.async and the element-load fills of each kernel family
  # (float: SIMT and TF32; bfloat16 shares its code with float16, float with double).
  sanitize racecheck --layouts contiguous,offset1 --dtypes float32,bfloat16
else
  note "compute-sanitizer not found: memcheck/racecheck skipped"
  FAILED=1
fi

# 5. Benchmark against torch (cuBLAS) on the target shapes.
run_step bench 150 "$PY" bench/bench_linear.py --device cuda --suite cuda-targets \
  --dtypes float32,tf32,bfloat16,float16 --budget 0.25 --json "$RESULTS/bench.json"

if [[ -f "$RESULTS/bench.json" ]]; then
  "$PY" - "$RESULTS/bench.json" << 'EOF' | tee -a "$SUMMARY"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
print("\nbenchmark (ratio = torch time / ours; > 1 is faster than torch):")
for r in rows:
    if r["op"] in ("forward", "backward_input", "backward_weight"):
        gbs = f"{r['ours_gbs']:7.0f} GB/s" if r.get("ours_gbs") else ""
        print(f"  {r['op']:<16}{r['M']:>6}{r['N']:>7}{r['K']:>7} {r['dtype']:<9}"
              f"{r['ours_gflops'] / 1e3:8.1f} TF/s {r['ratio']:6.2f}x {gbs}")
EOF
fi

note "total $(($(date +%s) - START))s; results in $RESULTS"
if ((FAILED)); then
  note "GPU CHECK FAILED"
  exit 1
fi
note "GPU CHECK PASSED"
