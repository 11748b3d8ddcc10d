#!/usr/bin/env bash
# Builds linear_ext (CPU kernels only) with AddressSanitizer + UndefinedBehaviorSanitizer in a copy
# of the tree, so the normal build is left alone, and runs the test suite under them.
#
#   scripts/sanitize.sh                  the default suite (not the slow parts), then the kernel
#                                        tests (ops, fuzz, special values) on each other micro-kernel
#                                        family this CPU supports (LINEAR_EXT_CPU_ISA)
#   scripts/sanitize.sh -k fuzz -x       these pytest arguments instead
#
# Python is not instrumented, so the ASan runtime is LD_PRELOADed into it, followed by libstdc++:
# the interpreter does not link libstdc++, and without it loaded up front ASan's __cxa_throw
# interceptor finds no real __cxa_throw and aborts at the first C++ exception (in torch, triton or
# ours). Any ASan report or UBSan finding stops the process with a stack trace, and the run fails;
# leak checking is off, because the interpreter leaks by design. Huge allocations return null (and
# torch raises) instead of aborting, as the hostile-input tests expect. Exit status: 0 when all
# tests pass with no report; the last summary line says whether a failure came from a sanitizer.
#
# Environment:
#   PYTHON        the interpreter with torch, pytest and hypothesis (default: .venv/bin/python if
#                 present, else python3)
#   SANITIZE_DIR  where the instrumented copy is built (default: a temporary folder, deleted after
#                 the run); an existing one is rebuilt incrementally
#   CXX           the C++ compiler (default c++); its own ASan runtime is preloaded
#   MAX_JOBS      parallel compile jobs (default 1)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
CXX=${CXX:-c++}
export MAX_JOBS=${MAX_JOBS:-1}

ASAN_RUNTIME=$("$CXX" -print-file-name=libasan.so)
CXX_RUNTIME=$("$CXX" -print-file-name=libstdc++.so)
for lib in "$ASAN_RUNTIME" "$CXX_RUNTIME"; do
  if [[ "$lib" != /* || ! -e "$lib" ]]; then
    echo "sanitize.sh: $CXX has no $lib (is the AddressSanitizer runtime installed?)" >&2
    exit 2
  fi
done

if [[ -n "${SANITIZE_DIR:-}" ]]; then
  WORK=$SANITIZE_DIR
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/linear_ext-sanitize.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
fi

start=$(date +%s)
echo "sanitize.sh: instrumented copy in $WORK"
# The sources, tests, and what tests run (examples, bench, scripts), without this tree's compiled library or build info (rsync-free copy).
for item in setup.py pyproject.toml csrc linear_ext tests examples bench scripts; do
  rm -rf "${WORK:?}/$item"
  cp -rp "$ROOT/$item" "$WORK/$item"  # -p: unchanged sources keep their mtimes (incremental rebuilds)
done
rm -f "$WORK"/linear_ext/_C*.so "$WORK/linear_ext/_build_info.py"
find "$WORK" -name __pycache__ -type d -prune -exec rm -rf {} +

# setup.py's compiler and linker pick CFLAGS / LDFLAGS up from the environment. No recovery from
# UB checks: the first finding aborts, so it cannot scroll by unnoticed.
SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
(
  cd "$WORK"
  LINEAR_EXT_CPU_ONLY=1 CFLAGS="$SAN_FLAGS -D_GLIBCXX_ASSERTIONS" LDFLAGS="-fsanitize=address,undefined" \
    "$PYTHON" setup.py -q build_ext --inplace >build.log 2>&1 || { tail -50 build.log >&2; exit 1; }
)
if ! grep -q -- "-fsanitize=address,undefined" "$WORK/build.log" && ! nm -D "$WORK"/linear_ext/_C*.so | grep -q __asan_; then
  echo "sanitize.sh: the library was not instrumented (CFLAGS ignored?)" >&2
  exit 1
fi
built=$(date +%s)
echo "sanitize.sh: built in $((built - start)) s"

# pytest must not capture file descriptor 2 (--capture=sys): a sanitizer report written there
# would be lost when the sanitizer ends the process. Everything is also logged, to be searched for
# reports at the end (a child process's report reaches the log through its test's failure message).
LOG="$WORK/pytest.log"
: >"$LOG"
SAN_ENV=(
  LD_PRELOAD="$ASAN_RUNTIME $CXX_RUNTIME"
  ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:abort_on_error=1:print_stacktrace=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  LINEAR_EXT_HOSTILE_CASE_TIMEOUT="${LINEAR_EXT_HOSTILE_CASE_TIMEOUT:-180}"  # children run slower under ASan
  PYTHONPATH="$WORK${PYTHONPATH:+:$PYTHONPATH}"
)
set +e  # from here on, failures are collected, not fatal
status=0
run_pytest() {  # [VAR=value ...] -- pytest arguments
  local vars=()
  while [[ "$1" != "--" ]]; do vars+=("$1"); shift; done
  shift
  env "${SAN_ENV[@]}" "${vars[@]}" "$PYTHON" -m pytest -p no:cacheprovider --capture=sys "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  if [[ $rc -ne 0 ]]; then status=$rc; fi
}

cd "$WORK/tests"
if [[ $# -gt 0 ]]; then
  run_pytest -- "$@"
else
  # The whole default suite on this CPU's micro-kernels, then the kernel-level tests on each other
  # micro-kernel family the CPU supports (the family is chosen once per process).
  run_pytest -- -q -m "not slow"
  default_isa=$(env "${SAN_ENV[@]}" "$PYTHON" -c "import linear_ext; print(linear_ext._C.cpu_isa())")
  for isa in avx512 avx2 generic; do
    [[ "$isa" == "$default_isa" ]] && continue
    if env "${SAN_ENV[@]}" LINEAR_EXT_CPU_ISA=$isa "$PYTHON" -c "import linear_ext; linear_ext._C.cpu_isa()" 2>/dev/null; then
      echo "sanitize.sh: LINEAR_EXT_CPU_ISA=$isa"
      run_pytest LINEAR_EXT_CPU_ISA=$isa -- -q -m "not slow" test_ops.py test_fuzz.py test_special_values.py
    fi
  done
fi

echo "sanitize.sh: tests ran in $(($(date +%s) - built)) s"
if grep -qE "ERROR: AddressSanitizer|AddressSanitizer: CHECK failed|runtime error:" "$LOG"; then
  echo "sanitize.sh: SANITIZER FINDINGS: see the reports above (ERROR: AddressSanitizer / runtime error:)"
  [[ $status -ne 0 ]] || status=1
elif [[ $status -ne 0 ]]; then
  echo "sanitize.sh: no sanitizer reports, but tests failed (pytest exit status $status)"
else
  echo "sanitize.sh: no sanitizer reports; all tests passed"
fi
exit $status
