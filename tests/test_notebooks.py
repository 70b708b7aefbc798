"""Notebooks: one parameters cell in step with lib/params.py, no outputs, and
a papermill smoke run of the whole baseline demo with the tiny profile."""

from __future__ import annotations

import ast

import nbformat
import pandas as pd
import pytest
from helpers import png_outputs

from lib import params as P
from lib import runs, stages
from lib.paths import NOTEBOOKS_DIR, PARAMS_DIR
from lib.sweep import run_sweep

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def parameters_cell(path):
    cells = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} must have exactly one cell tagged 'parameters'"
    return cells[0]


def test_every_notebook_has_a_stage():
    assert {p.stem for p in NOTEBOOKS} <= set(stages.STAGES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_matches_the_typed_defaults(path):
    source = parameters_cell(path).source
    for line in source.splitlines():
        # papermill's parser misreads a parameter line whose comment holds '='
        assert "=" not in line.partition("#")[2], f"{path.name}: '=' in a comment: {line}"
    values = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign), f"{path.name}: the parameters cell holds only assignments"
        values[node.targets[0].id] = ast.literal_eval(node.value)  # literals only, nothing derived
    defaults = P.as_dict(P.build(stages.params_class(path.stem), {}))
    assert values == defaults


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_and_with_our_kernel(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == runs.KERNEL_NAME
    assert nb.cells[0].cell_type == "markdown" and "python -m lib" in nb.cells[0].source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None


@pytest.mark.slow
def test_tiny_demo_sweep_end_to_end_and_resumable(isolated_home, tmp_path):
    log: list[str] = []
    table = run_sweep(PARAMS_DIR / "sweeps" / "baseline.yaml", profile="tiny", results_dir=tmp_path,
                      log=log.append)
    assert set(table.language) == {"pl", "tr", "ru"}
    assert set(table.model) == {"tiny-random"}
    assert {"bits_per_char", "bits_per_byte", "perplexity", "chars_per_token"} <= set(table.metric)
    assert set(table.columns) >= {"model", "language", "split", "metric", "value", "run_id"}
    # A random model spreads its guesses over the whole 49,152-token vocabulary:
    # about log2(49152) = 15.6 bits per token, whatever the language.
    assert "all" in set(table.source) and len(set(table.source)) > 2  # the whole and per source
    wide = table[table.source == "all"].pivot_table(index="language", columns="metric", values="value")
    bits_per_token = wide.bits_per_char * wide.chars_per_token
    assert bits_per_token.between(14.5, 17).all(), bits_per_token
    csv = tmp_path / "tables" / "baseline.csv"
    figure = tmp_path / "figures" / "baseline_bpc.png"
    assert pd.read_csv(csv).shape == table.shape
    first_csv, first_png = csv.read_bytes(), figure.read_bytes()

    for run in table.run_id.unique():
        record = runs.load_record(isolated_home / "runs" / "02_baseline_eval" / run)
        assert record["status"] == "complete" and record["wall_seconds"] > 0
        assert png_outputs(isolated_home / "runs" / "02_baseline_eval" / run / "02_baseline_eval.ipynb") >= 1

    log.clear()
    run_sweep(PARAMS_DIR / "sweeps" / "baseline.yaml", profile="tiny", results_dir=tmp_path, log=log.append)
    assert sum("skipped" in line for line in log) == 6
    assert csv.read_bytes() == first_csv and figure.read_bytes() == first_png
