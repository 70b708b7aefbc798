# README command 1: `make demo`; README command 2: `make test`.
# Each target sets up the environment first (idempotent, skipped when done).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo demo-lapt test lint figures lab

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) -m lib demo

# The LAPT demo: LoRA LAPT of SmolLM2-135M on Polish, before/after bpc (results/tables/lapt.csv).
demo-lapt: setup
	$(PY) -m lib sweep params/sweeps/lapt_demo.yaml

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check lib tests notebooks

figures: setup
	$(PY) -m lib figures

lab: setup
	$(VENV)/bin/jupyter lab notebooks/
