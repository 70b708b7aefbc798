from __future__ import annotations

import pandas as pd
import pytest

from lib import runs, stages
from lib import sweep as S
from lib.paths import PARAMS_DIR


def write(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def test_demo_sweep_expands_into_six_distinct_runs():
    plan = S.load_sweep(PARAMS_DIR / "sweeps" / "baseline.yaml")
    assert [r.stage for r in plan.runs] == ["01_prepare_data"] * 3 + ["02_baseline_eval"] * 3
    assert len({r.run_dir for r in plan.runs}) == 6
    assert [r.varying for r in plan.runs[3:]] == [{"language": x} for x in ("pl", "tr", "ru")]
    assert plan.table == "baseline.csv" and plan.figures == ["baseline_bpc"]


def test_a_steps_profile_parameters_apply_under_that_profile_alone(tmp_path):
    steps = "steps:\n  - notebook: 01_prepare_data\n  - notebook: 02_baseline_eval\n    params: {max_chars: 4000}\n"
    path = write(tmp_path, steps + "    profiles: {tiny: {max_chars: 500}}\n")
    plain, tiny = S.load_sweep(path), S.load_sweep(path, profile="tiny")
    assert plain.runs[1].params.max_chars == 4000 and tiny.runs[1].params.max_chars == 500
    assert S.load_sweep(path, profile="tiny", overrides={"max_chars": 7}).runs[1].params.max_chars == 7  # -p wins
    assert plain.runs[1].run_dir == S.load_sweep(write(tmp_path, steps)).runs[1].run_dir  # other profiles: same ids


def test_profile_and_overrides_reach_every_applicable_step():
    plan = S.load_sweep(PARAMS_DIR / "sweeps" / "baseline.yaml", profile="tiny",
                        overrides={"seed": 7, "corpus_tag": "seed-7"})  # no corpus of that tag exists yet
    assert all(r.params.corpus_tag == "seed-7" for r in plan.runs)
    assert [r.params.seed for r in plan.runs if r.stage == "01_prepare_data"] == [7, 7, 7]


def test_a_bad_parameter_in_a_late_step_fails_before_anything_runs(tmp_path, isolated_home):
    path = write(tmp_path, """
steps:
  - notebook: 01_prepare_data
    grid: {language: [pl]}
  - notebook: 02_baseline_eval
    grid: {language: [pl, xx]}
""")
    first = runs.run_path("01_prepare_data", stages.resolve("01_prepare_data", overrides={"language": "pl"}))
    with pytest.raises(S.SweepError, match="step 2.*unknown language 'xx'"):
        S.run_sweep(path, results_dir=tmp_path)
    assert not first.exists()  # the valid first step never started


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: []", "no steps"),
        ("stepz: []", "unknown key"),
        ("steps:\n  - notebook: 02_baseline_eval\n    grid: {language: pl}", "non-empty list"),
        ("steps:\n  - notebook: 02_baseline_eval\n    params: {modelz: [a]}", "unknown parameter.*modelz"),
        ("steps:\n  - notebook: 02_baseline_eval\n    repeat: 3", "unknown key.*repeat"),
        ("steps:\n  - notebook: 02_baseline_eval\n    profiles: {huge: {max_chars: 5}}", "unknown profile.*huge"),
        ("steps:\n  - notebook: 02_baseline_eval\n    profiles: {tiny: 5}", "profiles must map"),
        ("steps:\n  - notebook: 07_nothing", "unknown notebook"),
    ],
)
def test_malformed_sweeps(tmp_path, text, message):
    with pytest.raises((S.SweepError, ValueError), match=message):
        S.load_sweep(write(tmp_path, text))


def test_override_matching_no_step_is_an_error(tmp_path):
    with pytest.raises(S.SweepError, match="match no parameter"):
        S.run_sweep(PARAMS_DIR / "sweeps" / "baseline.yaml", overrides={"learning_rate": 1.0},
                    results_dir=tmp_path)


def test_tidy_orders_columns_and_rows_stably():
    frame = pd.DataFrame([
        {"value": 2.0, "metric": "b", "model": "m2", "language": "pl", "run_id": "r2"},
        {"value": 1.0, "metric": "a", "model": "m1", "language": "pl", "run_id": "r1"},
    ])
    tidy = S.tidy(frame)
    assert list(tidy.columns) == ["model", "language", "metric", "value", "run_id"]
    assert list(tidy["model"]) == ["m1", "m2"]
    assert S.tidy(frame.iloc[::-1]).equals(tidy)


def test_a_step_refers_to_an_earlier_run_by_id(tmp_path):
    path = write(tmp_path, """
steps:
  - notebook: 01_prepare_data
    grid: {language: [tr, en]}
  - id: c
    notebook: 03_lapt
    params: {language: tr}
  - notebook: 02_baseline_eval
    params: {language: tr}
    grid: {models: [[smollm2-135m-instruct, "@c"]]}
  - notebook: 03_lapt
    params: {model: "@c", language: tr, max_steps: 3}
""")
    plan = S.load_sweep(path)
    c_dir = str(plan.runs[2].run_dir)
    assert plan.runs[3].params.models == ["smollm2-135m-instruct", c_dir]
    assert plan.runs[4].params.model == c_dir
    assert plan.runs[4].run_dir != plan.runs[2].run_dir


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps:\n  - notebook: 03_lapt\n    params: {model: '@c'}", "names no earlier step"),
        ("steps:\n  - id: c\n    notebook: 03_lapt\n    grid: {language: [pl, tr]}\n"
         "  - notebook: 03_lapt\n    params: {model: '@c'}", "exactly one"),
        ("steps:\n  - id: c\n    notebook: 03_lapt\n  - id: c\n    notebook: 03_lapt", "used twice"),
        ("steps:\n  - id: 'a b'\n    notebook: 03_lapt", "id must be a word"),
    ],
)
def test_bad_references(tmp_path, text, message):
    with pytest.raises(S.SweepError, match=message):
        S.load_sweep(write(tmp_path, text))


def test_a_step_label_names_its_rows(tmp_path, monkeypatch):
    path = write(tmp_path, """
steps:
  - notebook: 01_prepare_data
    grid: {language: [tr, en]}
  - notebook: 03_lapt
    label: no v
    params: {language: tr}
    collect: true
  - notebook: 03_lapt
    params: {language: tr, max_steps: 3}
    collect: true
""")
    plan = S.load_sweep(path)
    assert [run.label for run in plan.runs[2:]] == ["no v", ""]
    monkeypatch.setattr(runs, "is_complete", lambda run_dir: True)
    monkeypatch.setattr(runs, "load_metrics", lambda run_dir: {"rows": [{"metric": "bpc", "value": 1.0}]})
    frame = S.collect_rows(plan)
    assert sorted(frame["label"].fillna("")) == ["", "no v"]  # the unlabelled step's row has none
    with pytest.raises(S.SweepError, match="label must be a string"):
        S.load_sweep(write(tmp_path, "steps:\n  - notebook: 01_prepare_data\n    label: [a]"))


def test_a_run_directory_in_a_row_is_written_as_its_run_id(isolated_home):
    """Tables name no machine's paths: a model trained by an earlier step appears as its run id."""
    from lib.paths import runs_dir

    run = runs_dir() / "04_vocab_adapt" / "04_vocab_adapt-88d08fd5ca"
    assert S._portable(str(run)) == "04_vocab_adapt-88d08fd5ca"
    assert S._portable("smollm2-135m-instruct") == "smollm2-135m-instruct"
    assert S._portable("/data/checkpoints/my-model") == "/data/checkpoints/my-model"  # not a run: as given
    assert S._portable(str(run / "model")) == str(run / "model")
    assert S._portable(1.5) == 1.5
