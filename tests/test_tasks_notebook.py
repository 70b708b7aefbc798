"""08_evaluate: parameters, notebook shape, sweep file, figure, and a tiny headless run."""

from __future__ import annotations

import ast
import dataclasses
import json

import pandas as pd
import pytest
from helpers import png_outputs

from lib import params as P
from lib import stages
from lib.paths import NOTEBOOKS_DIR, PARAMS_DIR
from lib.stages.evaluate import EvaluateParams

NOTEBOOK = NOTEBOOKS_DIR / "08_evaluate.ipynb"
STAGE = "08_evaluate"


def test_stage_is_registered():
    assert stages.params_class(STAGE) is EvaluateParams


def test_params_defaults_and_errors():
    P.build(EvaluateParams, {})
    for values, message in [
        ({"shots": [-1]}, "shots must be"),
        ({"shots": [0, 0]}, "duplicates"),
        ({"fewshot_sampling": "random"}, "fewshot_sampling must be one of"),
        ({"tasks": ["nope"]}, "unknown task 'nope'"),
        ({"tasks": ["word_sense_choice"], "language": "pl"}, "exists for ru"),
        ({"language": "de"}, "unknown language"),
        ({"max_batch_tokens": 8}, "at least 64"),
        ({"models": []}, "at least one model"),
    ]:
        with pytest.raises(P.ParamsError, match=message):
            P.build(EvaluateParams, values)
    with pytest.raises(P.ParamsError, match="'shots' must be a list"):
        P.build(EvaluateParams, {"shots": 3})
    with pytest.raises(P.ParamsError, match="unknown parameter"):
        P.build(EvaluateParams, {"shot": [0]})


def _cells():
    return json.loads(NOTEBOOK.read_text())["cells"]


def test_notebook_is_committed_clean_with_one_parameters_cell():
    cells = _cells()
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    for cell in cells:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    source = "".join(tagged[0]["source"])
    assigned = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign), "the parameters cell holds assignments only"
        assigned[node.targets[0].id] = ast.literal_eval(node.value)  # literals, nothing derived
    defaults = EvaluateParams()
    assert list(assigned) == [f.name for f in dataclasses.fields(EvaluateParams)]
    assert assigned == dataclasses.asdict(defaults)
    for line in source.splitlines()[1:]:
        assert "  # " in line, f"parameter without a comment: {line}"


def test_sweep_file_expands():
    from lib.sweep import load_sweep

    sweep = load_sweep(PARAMS_DIR / "sweeps" / "benchmarks.yaml")
    assert sweep.table == "benchmarks.csv" and sweep.figures == ["benchmarks"]
    evaluate = [r for r in sweep.runs if r.stage == STAGE]
    assert [r.params.language for r in evaluate] == ["pl", "tr", "ru"]
    assert all(r.collect and r.params.dtype == "bfloat16" for r in evaluate)
    assert all(r.params.models == ["smollm2-135m-instruct", "gemma3-270m"] and r.params.shots == [0, 3]
               and r.params.tasks == ["offline"] for r in evaluate)


def _table():
    rows = []
    for model in ("a", "b"):
        for n_shot in (0, 3):
            rows += [
                dict(model=model, language="pl", task="translation_choice_from_en", n_shot=n_shot,
                     metric="acc", value=0.5, ci_low=0.45, ci_high=0.55, chance=0.25, n=500,
                     kind="multiple_choice"),
                dict(model=model, language="pl", task="topic_classification", n_shot=n_shot,
                     metric="macro_f1", value=0.2, ci_low=0.15, ci_high=0.25, chance=0.1, n=487,
                     kind="classification"),
                dict(model=model, language="tr", task="definition_to_word_gen", n_shot=n_shot,
                     metric="chrf", value=20.0, ci_low=18.0, ci_high=22.0, chance=float("nan"), n=500,
                     kind="generation"),
            ]
    return pd.DataFrame(rows)


def test_benchmarks_figure(tmp_path):
    from lib.stages import evaluate, figures
    from lib.tasks.plots import primary_rows

    assert figures.FIGURES["benchmarks"] is evaluate.benchmarks_figure
    (tmp_path / "tables").mkdir()
    _table().to_csv(tmp_path / "tables" / "benchmarks.csv", index=False)
    path = figures.make("benchmarks", tmp_path)
    assert path == tmp_path / "figures" / "benchmarks.png" and path.stat().st_size > 10_000
    primary = primary_rows(_table())
    assert primary["value"].max() <= 1 and set(primary["metric"]) == {"acc", "macro_f1", "chrf"}


@pytest.mark.slow
def test_notebook_runs_headless(isolated_home):
    """A few items of two Turkish WordNet tasks with the tiny model, through papermill."""
    from lib import runs
    from lib.corpus import build_corpus

    build_corpus("tr", tag="tasks-test", sources=["libreoffice", "wordnet"], max_docs_per_source=40,
                 test_fraction=0.3, validation_fraction=0.1, min_chars=100)
    params = P.build(EvaluateParams, dict(
        models=["tiny-random"], language="tr", tasks=["definition_to_word", "definition_to_word_gen"],
        shots=[0, 1], corpus_tag="tasks-test", max_items=12, n_bootstrap=50, device="cpu"))
    run_dir = runs.execute(STAGE, params)
    metrics = runs.load_metrics(run_dir)
    table = pd.DataFrame(metrics["rows"])
    assert set(table["metric"]) == {"acc", "acc_norm", "exact_match", "chrf"}
    assert set(table["n_shot"]) == {0, 1} and (table["n"] == 12).all()
    assert {"model", "language", "task", "n_shot", "metric", "value", "n", "ci_low", "ci_high",
            "chance"} <= set(table.columns)
    assert (run_dir / "benchmarks.png").is_file() and (run_dir / "predictions.csv").is_file()
    assert png_outputs(run_dir / "08_evaluate.ipynb") >= 1
