# Two commands do all set-up on a fresh machine:
#   make demo   -> creates .venv, installs irg-rl, runs the embedded ShapesWorld pipeline
#   make test   -> creates/updates .venv the same way, runs the default test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= runs/demo
DEMO_ARGS ?=

.PHONY: venv demo test test-slow lint format clean-demo ci-clone

venv: $(STAMP)

# torch and torchvision are pinned as a matching pair (open_clip imports torchvision); DeepSpeed builds no CUDA ops.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	DS_BUILD_OPS=0 $(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m experiments.demo --out $(DEMO_OUT) $(DEMO_ARGS)

test: $(STAMP)
	WANDB_MODE=disabled $(PY) -m pytest -q -x --timeout=900

test-slow: $(STAMP)
	WANDB_MODE=disabled $(PY) -m pytest -q -m slow --timeout=1800

lint: $(STAMP)
	$(PY) -m ruff check irg_rl rewards scripts experiments tests
	$(PY) -m ruff format --check irg_rl rewards scripts experiments tests

format: $(STAMP)
	$(PY) -m ruff format irg_rl rewards scripts experiments tests
	$(PY) -m ruff check --fix irg_rl rewards scripts experiments tests

clean-demo:
	rm -rf $(DEMO_OUT)

# .ci/run on a fresh clone of HEAD (its own ~7 GB venv), removed afterwards whatever the outcome
# (dash runs an EXIT trap on a signal only if the signal's own trap exits; the inner make gets no MAKEFLAGS)
ci-clone:
	d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && trap 'exit 130' INT && trap 'exit 143' TERM HUP && \
	git clone -q . "$$d/p" && cd "$$d/p" && env -u MAKEFLAGS -u MAKELEVEL CI=true bash .ci/run
