# One-command entry points; each sets up what it needs on a fresh machine.
#   make run    the main job: MNIST example vs nn.Linear, then a benchmark summary
#   make test   the test suite
#   make bench  the full CPU benchmark against torch (table + bench/results-cpu.json)
#   make sanitize  the suite again on an AddressSanitizer + UBSan build of the CPU kernels
# LINEAR_EXT_CPU_ONLY=1 skips compiling the CUDA kernels (faster local builds).

PYTHON ?= python3
TORCH_VERSION ?= 2.14.1
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

SOURCES := setup.py pyproject.toml $(shell find csrc linear_ext -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.py' | grep -v _build_info)

.PHONY: run test bench sanitize install clean

# torch first, then our build against it (--no-build-isolation: no second torch download and no
# build/run version mismatch). torch==2.14.1 is the CUDA 13.0 build, so nvcc compiles our CUDA
# kernels too wherever the toolkit is installed.
$(VENV)/.deps:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet torch==$(TORCH_VERSION) ninja setuptools wheel numpy pytest hypothesis matplotlib tqdm
	touch $@

$(VENV)/.built: $(VENV)/.deps $(SOURCES)
	MAX_JOBS=$${MAX_JOBS:-2} $(PIP) install --quiet --no-build-isolation --no-deps --force-reinstall .
	touch $@

install: $(VENV)/.built

test: $(VENV)/.built
	$(VENV)/bin/pytest -q tests

run: $(VENV)/.built
	$(PY) examples/mnist.py --download --compare-torch --epochs 5
	$(PY) bench/bench_linear.py --suite quick --threads 1,2 --peaks

bench: $(VENV)/.built
	$(PY) bench/bench_linear.py --suite cpu-targets --threads 1,2 --dtypes float32,float64,bfloat16 --peaks \
		--json bench/results-cpu.json

sanitize: $(VENV)/.deps
	PYTHON=$(CURDIR)/$(PY) MAX_JOBS=$${MAX_JOBS:-2} scripts/sanitize.sh

clean:
	rm -rf build $(VENV) linear_ext/_C*.so linear_ext/_build_info.py
