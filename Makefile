# decodeprof: the commands a newcomer runs. Each installs what it needs into .venv.
#   make demo                 render the report from the shipped H200 sample runs (no GPU, no torch)
#   make test                 run the test suite (CPU; GPU tests skip without CUDA)
#   make profile TARGET=graph profile one target under nsys (GPU machine)
#   make ncu TARGET=graph     the same with Nsight Compute per-kernel counters
#   make profile-all          profile every single-GPU target (decodeprof targets --single-gpu)
#   make bench                run every single-GPU target side by side (BENCH="graph fp8" for fewer)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DECODEPROF ?= $(VENV)/bin/decodeprof
# Where the tools are already installed (e.g. an offline GPU machine):
#   make profile TARGET=graph SETUP= DECODEPROF="python3 -m decodeprof"
SETUP ?= venv
TARGET ?= baseline
ARGS ?=
GPUS ?= 1
OUT ?= runs
BENCH ?=

.PHONY: demo test venv profile ncu profile-all bench diff doctor clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The analysis side only (no torch, no triton): enough to analyse traces and render reports.
$(VENV)/.analysis: pyproject.toml requirements.txt | $(PY)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Everything the tests need: the analysis side, torch's CPU build, Triton's interpreter, pytest.
$(VENV)/.installed: $(VENV)/.analysis requirements-ci.txt
	$(PY) -m pip install -q -r requirements-ci.txt
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.analysis
	$(DECODEPROF) report tests/data/h200/*/ -o reports/out/decodeprof-report.html

test: venv
	bash scripts/install_nsys.sh || echo "Nsight Systems not installed: nsys tests will be skipped"
	bash scripts/install_chromium.sh || echo "Chromium not installed: browser tests will be skipped"
	$(PY) -m pytest -q

profile: $(SETUP)
	$(DECODEPROF) profile $(TARGET) --out $(OUT) --gpus $(GPUS) -- $(ARGS)

ncu: $(SETUP)
	$(DECODEPROF) profile $(TARGET) --ncu --out $(OUT) --gpus $(GPUS) -- $(ARGS)

profile-all: $(SETUP)
	labels=$$($(DECODEPROF) targets --single-gpu --names) || exit 1; \
	for t in $$labels; do $(DECODEPROF) profile $$t --out $(OUT) -- $(ARGS) || exit 1; done

bench: $(SETUP)
	$(DECODEPROF) bench $(BENCH) --args "$(ARGS)"

diff: $(SETUP)
	$(DECODEPROF) diff tests/data/h100/baseline tests/data/h100/graph -o reports/out/diff.html

doctor: $(SETUP)
	$(DECODEPROF) doctor

clean:
	rm -rf $(VENV) .pytest_cache reports/out
