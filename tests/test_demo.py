"""The demo (README command 1, ``python -m lib demo``): the before/after table from the demo
sweep's rows, the samples from 08's record, and the command end to end on the tiny profile (slow)."""

from __future__ import annotations

import pandas as pd
import pytest

from lib import demo_report as D
from lib.paths import PARAMS_DIR
from lib.stages.figures import FIGURES
from lib.sweep import load_sweep
from tests.test_cli_safety import cli, new_home


def lapt_row(language, split, stage, metric, value, n_chars=1000, n_tokens=500):
    return {"model": "smollm2-135m-instruct", "adapted_to": "pl", "language": language, "split": split,
            "stage": stage, "metric": metric, "value": value, "n_chars": n_chars, "n_tokens": n_tokens}


def eval_row(model, metric, value, speed):
    return {"model": model, "language": "pl", "task": "translation_choice_to_en", "n_shot": 0, "metric": metric,
            "value": value, "n": 100, "chars_per_second": speed}


def demo_table() -> pd.DataFrame:
    rows = [lapt_row("pl", "test", "before", "bits_per_char", 2.4, 60000, 25000),
            lapt_row("pl", "test", "after", "bits_per_char", 1.95, 60000, 25000),
            lapt_row("pl", "test", "after", "perplexity", 14.7),
            lapt_row("en", "english_general", "before", "bits_per_char", 1.50, 15000, 4000),
            lapt_row("en", "english_general", "after", "bits_per_char", 1.53, 15000, 4000),
            lapt_row("en", "test", "before", "bits_per_char", 0.906),
            lapt_row("en", "test", "after", "bits_per_char", 0.889),
            lapt_row("pl", "validation", "after", "bits_per_char", 1.8),  # the curve's end: not a text row
            eval_row("before", "acc", 0.40, 50.0), eval_row("after", "acc", 0.45, 50.0)]
    return pd.DataFrame(rows)


def test_before_after_puts_each_measure_side_by_side():
    frame = D.before_after(demo_table()).set_index(["measure", "text"])
    pl = "pl test split (the language adapted to)"
    assert frame.loc[("bits per character", pl), ["before", "after"]].tolist() == [2.4, 1.95]
    assert frame.loc[("bits per character", pl), "change_%"] == pytest.approx(-18.75)
    assert frame.loc[("bits per character", pl), "better"] == "yes"
    assert frame.loc[("characters per token", pl), ["before", "after", "better"]].tolist() == [2.4, 2.4, "same"]
    forgetting = frame.loc[("bits per character", "general English, Debian fortunes (forgetting)")]
    assert forgetting["better"] == "no" and forgetting["change_%"] == pytest.approx(2.0)
    assert frame.loc[("translation_choice_to_en 0-shot acc", "100 test items"), "better"] == "yes"
    assert frame.loc[("characters generated per second", "the same test paragraphs"), "better"] == "same"
    texts = frame.xs("bits per character", level="measure").index.tolist()
    assert texts[0] == pl and len(texts) == 3  # the target first; the validation curve is not a text


def test_a_table_without_the_stages_rows_is_a_clear_error():
    lapt_only = demo_table()[lambda t: t["task"].isna()].drop(columns=["task"])
    with pytest.raises(D.DemoReportError, match="no 08_evaluate rows"):
        D.before_after(lapt_only)
    with pytest.raises(D.DemoReportError, match="no 03_lapt rows"):
        D.before_after(pd.DataFrame([eval_row("before", "acc", 0.4, 1.0)]))


def test_samples_and_markdown():
    metrics = {"timings": {"speed": [
        {"model": "before", "samples": [{"prompt": "Ala ma kota. " * 40, "continuation": " i psa."},
                                        {"prompt": "second", "continuation": "x"}]},
        {"model": "after", "samples": [{"prompt": "Ala ma kota. " * 40, "continuation": " Kot ma Alę.\n"}]}]}}
    generated = D.samples(metrics)
    assert [g["model"] for g in generated] == ["before", "after"]  # the first sample of each model
    text = D.markdown(D.before_after(demo_table()), generated)
    assert "before: i psa." in text and "after: Kot ma Alę." in text and "prompt: ..." in text
    assert D.samples({"timings": {"speed": []}}) == [] and D.samples({}) == []


def test_the_demo_sweep_adapts_the_model_it_evaluates():
    sweep = load_sweep(PARAMS_DIR / "sweeps" / "demo.yaml")
    assert "demo" in FIGURES and sweep.figures == ["demo"] and sweep.table == "demo.csv"
    (lapt,) = [r for r in sweep.runs if r.stage == "03_lapt"]
    (evaluation,) = [r for r in sweep.runs if r.stage == "08_evaluate"]
    assert lapt.params.model == evaluation.params.models[0] == "smollm2-135m-instruct"
    assert evaluation.params.models[1] == str(lapt.run_dir) and evaluation.params.labels == ["before", "after"]
    assert lapt.params.english_general_max_chars > 0  # forgetting on text no target corpus translates
    assert evaluation.params.speed_prompts > 0  # the samples come from the speed measure


@pytest.mark.slow
def test_the_demo_command_end_to_end_with_the_tiny_profile(shared_cache, tmp_path):
    """About 90 s: corpora, LoRA LAPT and evaluation of a tiny random model, then the report."""
    home = new_home(tmp_path, shared_cache)
    out = tmp_path / "results"
    done = cli(home, "demo", "--profile", "tiny", "-p", 'models=[tiny-random, "@adapted"]',
               "--results-dir", str(out), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## Before and after adaptation" in done.stdout and "before: " in done.stdout
    assert (out / "figures" / "demo.png").stat().st_size > 0
    table = D.before_after(pd.read_csv(out / "tables" / "demo.csv"))
    assert {"bits per character", "characters per token", "translation_choice_to_en 0-shot acc",
            "characters generated per second"} <= set(table["measure"])
    assert table[["before", "after"]].notna().all().all()
