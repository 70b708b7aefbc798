# README command 1: `make demo`; README command 2: `make test`.
# Each target sets up the environment first (idempotent, skipped when done).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo baseline demo-lapt reproduce-curie reproduce-llamaturk reproduce-lep test test-fast lint figures lab

setup:
	@bash scripts/bootstrap.sh

# The demo: SmolLM2-135M adapted to Polish (LoRA LAPT), before/after table, samples and figure.
demo: setup
	$(PY) -m lib demo

# The baseline: both packaged models scored on the pl, tr and ru test splits (results/tables/baseline.csv).
baseline: setup
	$(PY) -m lib sweep params/sweeps/baseline.yaml

# The LAPT demo: LoRA LAPT of SmolLM2-135M on Polish, before/after bpc (results/tables/lapt.csv).
demo-lapt: setup
	$(PY) -m lib sweep params/sweeps/lapt_demo.yaml

# One paper's sweeps in order, then its figures beside ours (results/tables/paper_<paper>.csv);
# README "Reproducing a paper". ARGS passes options, e.g. make reproduce-curie ARGS=--tables-only
reproduce-curie reproduce-llamaturk reproduce-lep: setup
	$(PY) -m lib reproduce $(@:reproduce-%=%) $(ARGS)

# The whole suite (what CI runs), and the quick one for a developer's loop (no notebook runs,
# no packaged real model, no end-to-end sweeps: the tests marked slow).
test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check lib tests notebooks

figures: setup
	$(PY) -m lib figures

lab: setup
	$(VENV)/bin/jupyter lab notebooks/
