"""Notebooks: one parameters cell in step with lib/params.py, and no outputs (the papermill smoke run
of the baseline demo with the tiny profile is tests/test_cli_safety.py's tiny sweep)."""

from __future__ import annotations

import ast

import nbformat
import pytest

from lib import params as P
from lib import runs, stages
from lib.paths import NOTEBOOKS_DIR

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
