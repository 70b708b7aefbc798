"""The whole LEP chain on Russian as one sweep (params/sweeps/lep_chain_ru.yaml), planned but
not run: its structure, the ``labels`` that name run directories in 02's and 08's rows, and
its figure, drawn from a small synthetic table. (The tiny chain runs in test_lep_stage.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from lib import params as P
from lib.paths import PARAMS_DIR, PROJ_ROOT
from lib.stages import figures
from lib.stages import lep_propagate as LEP

SWEEP = PARAMS_DIR / "sweeps" / "lep_chain_ru.yaml"
S = "smollm2-135m-instruct"


def plan(profile=None):
    from lib.sweep import load_sweep

    sweep = load_sweep(SWEEP, profile=profile)  # resolves and preflights every run
    by_stage: dict[str, list] = {}
    for run in sweep.runs:
        by_stage.setdefault(run.stage, []).append(run)
    return sweep, by_stage


def stages_of(name: str) -> dict[str, list]:
    """params/sweeps/<name>.yaml's runs, by stage, in order."""
    from lib.sweep import load_sweep

    by_stage: dict[str, list] = {}
    for run in load_sweep(PARAMS_DIR / "sweeps" / f"{name}.yaml").runs:
        by_stage.setdefault(run.stage, []).append(run)
    return by_stage


@pytest.mark.parametrize("profile", [None, "tiny"])
def test_the_sweep_runs_the_whole_chain(profile):
    sweep, steps = plan(profile)
    assert sweep.table == "lep_chain_ru.csv" and sweep.figures == ["lep_chain_ru"]
    assert len(sweep.runs) == 18
    assert sorted(r.params.language for r in steps["01_prepare_data"]) == ["en", "ru"]
    # tokenizers from S, one id each
    vocab = {r.params.strategy: str(r.run_dir) for r in steps["04_vocab_adapt"]}
    assert set(vocab) == {"bpe", "extension"}
    assert all(r.params.model == S and r.params.language == "ru" for r in steps["04_vocab_adapt"])
    # donors: embeddings-only LAPT of each new vocabulary
    donors = {r.params.model: str(r.run_dir) for r in steps["03_lapt"]}
    assert set(donors) == set(vocab.values())
    assert all(r.params.mode == "embeddings" for r in steps["03_lapt"])
    # T: S instruction-tuned in full (a LoRA adapter would leave T's embeddings equal to S's)
    (t,) = steps["05_instruction_tuning"]
    assert t.params.model == S and t.params.mode == "full" and t.params.language == "ru"
    # 07: every mode for every donor into T, and conversion with self-calibration per donor
    lep = steps["07_lep_propagate"]
    assert all(r.params.base == S and r.params.instruct == str(t.run_dir) for r in lep)
    combos = sorted((r.params.donor, r.params.mode, r.params.calibrate) for r in lep)
    expected = [(d, m, False) for d in donors.values() for m in ("conversion", "overlap", "swap")]
    assert combos == sorted(expected + [(d, "conversion", True) for d in donors.values()])
    # 02: S, T, each D and every propagated and calibrated model, each under a label;
    # 08: the same without the donors (no instruct model to compare them with)
    everything = {S, str(t.run_dir), *donors.values(), *(str(r.run_dir) for r in lep)}
    (evaluate,) = steps["08_evaluate"]
    scores = steps["02_baseline_eval"]
    assert sorted(r.params.language for r in scores) == ["en", "ru"]
    for run, models in [*((s, everything) for s in scores), (evaluate, everything - set(donors.values()))]:
        assert set(run.params.models) == models and len(run.params.models) == len(models)
        assert len(set(run.params.labels)) == len(models)
        assert LEP.chain_order(run.params.labels)[:2] == ["S", "T"]  # every label has its group
        named = dict(zip(run.params.models, run.params.labels))
        assert named[S] == "S" and named[str(t.run_dir)] == "T"
    assert len(scores[0].params.models) == 12 and len(evaluate.params.models) == 10
    scored = dict(zip(scores[0].params.models, scores[0].params.labels))
    assert all(scored[m] == label for m, label in zip(evaluate.params.models, evaluate.params.labels))
    from lib.tasks.evaluation import resolve_task_ids

    tasks = resolve_task_ids(evaluate.params.tasks, evaluate.params.language)
    assert {"copy:ru", "copy:en"} <= set(tasks) and len(tasks) > 2  # the offline tasks as well
    assert evaluate.params.shots == [0, 3] and evaluate.params.speed_prompts > 0
    # the table: 02's and 08's rows only
    assert {r.stage for r in sweep.runs if r.collect} == {"02_baseline_eval", "08_evaluate"}


def test_labels_are_checked():
    from lib.stages.baseline_eval import BaselineEvalParams
    from lib.stages.evaluate import EvaluateParams

    for cls in (EvaluateParams, BaselineEvalParams):
        assert P.build(cls, {"models": ["a", "b"], "labels": ["A", "B"]}).labels == ["A", "B"]
        with pytest.raises(P.ParamsError, match="labels must name each of the 2 models"):
            P.build(cls, {"models": ["a", "b"], "labels": ["A"]})
        with pytest.raises(P.ParamsError, match="labels must differ.*A repeated"):
            P.build(cls, {"models": ["a", "b"], "labels": ["A", "A"]})
        with pytest.raises(P.ParamsError, match="non-empty"):
            P.build(cls, {"models": ["a", "b"], "labels": ["A", " "]})


def test_08_rows_carry_the_labels_and_load_the_models(monkeypatch):
    from lib import models
    from lib.stages import evaluate

    loaded = []
    monkeypatch.setattr(models, "load_model_and_tokenizer", lambda spec, **_: (loaded.append(spec), None))

    def fake_task(model, tokenizer, task, n_shot, *, model_name, **_):
        row = {"model": model_name, "task": task.id, "n_shot": n_shot, "metric": "acc", "value": 0.5, "n": 2,
               "ci_low": 0.0, "ci_high": 1.0, "chance": 0.25}
        return [row], [{"model": model_name}]

    monkeypatch.setattr(evaluate, "evaluate_task", fake_task)
    task = SimpleNamespace(id="t:ru", n_available=2, eval_split="test", kind="multiple_choice")
    params = P.build(evaluate.EvaluateParams, {"models": ["/runs/07-a", "/runs/07-b"], "labels": ["LEP a", "LEP b"],
                                               "language": "ru", "shots": [0], "device": "cpu"})
    rows, predictions, timings = evaluate.evaluate_models(params, [task], log=lambda *_: None)
    assert loaded == ["/runs/07-a", "/runs/07-b"]
    assert [r["model"] for r in rows] == ["LEP a", "LEP b"] == [p["model"] for p in predictions]
    assert [r["model"] for r in timings["runs"]] == ["LEP a", "LEP b"]


def test_02_rows_carry_the_labels(monkeypatch):
    import lib.corpus
    from lib import models
    from lib.stages import baseline_eval

    class Split:
        docs = [{"id": f"d{i}", "text": "текст " * 20, "source": "man"} for i in range(3)]

        def __getitem__(self, key):
            return [d[key] for d in self.docs] if isinstance(key, str) else self.docs[key]

    monkeypatch.setattr(models, "check_spec", lambda spec: None)
    monkeypatch.setattr(lib.corpus, "load_corpus", lambda language, tag: {"test": Split()})
    monkeypatch.setattr(baseline_eval, "_corpus_fingerprint", lambda language, tag: "x")
    monkeypatch.setattr(baseline_eval, "_model_fingerprint", lambda spec: [])
    monkeypatch.setattr(baseline_eval, "_score_one", lambda p, name, device, by_source, log: (
        [{"model": name, "source": "all", "metric": "bits_per_char", "value": 1.0}], {"seconds": 1.0}))
    params = P.build(baseline_eval.BaselineEvalParams, {"models": ["smollm2-135m-instruct", "/runs/05-t"],
                                                        "labels": ["S", "T"], "language": "ru", "device": "cpu"})
    rows, timings = baseline_eval.score_models(params, log=lambda *_: None)
    assert [r["model"] for r in rows] == ["S", "T"]
    assert set(timings) == {"device", "S", "T"}


# ---------------------------------------------------------------- the figure

MODELS = ["S", "T", "D bpe", "LEP bpe conversion", "LEP bpe conversion calibrated"]


def chain_table() -> pd.DataFrame:
    """Rows shaped as 02_baseline_eval's and 08_evaluate's, for five of the chain's models."""
    rows = []
    for i, model in enumerate(MODELS):
        for language in ("ru", "en"):
            for source in ("all", "man"):  # only 'all' is plotted
                rows += [{"model": model, "language": language, "split": "test", "source": source,
                          "metric": metric, "value": value + 0.1 * i + (source == "man")}
                         for metric, value in (("bits_per_char", 1.5), ("chars_per_token", 2.0))]
        speed = {"chars_per_second": 100.0 + 10 * i, "tokens_per_second": 50.0 - i}
        for n_shot in (0, 3):
            rows += [{"model": model, "language": "ru", "task": "translation_choice_from_en", "kind": "multiple_choice",
                      "n_shot": n_shot, "metric": metric, "value": value, **speed}
                     for metric, value in (("acc", 0.4 + 0.01 * i + 0.1 * (n_shot > 0)), ("acc_norm", 0.9))]
            rows += [{"model": model, "language": "ru", "task": "topic_classification", "kind": "classification",
                      "n_shot": n_shot, "metric": metric, "value": value, **speed}
                     for metric, value in (("acc", 0.9), ("macro_f1", 0.2))]
        for language in ("ru", "en"):
            rows.append({"model": model, "language": language, "task": "copy", "kind": "copy", "n_shot": 0,
                         "metric": "copy_rate", "value": 0.1 * i + (language == "en") * 0.05, **speed})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # the figure may not rely on row order


def test_the_chain_figure_reads_its_panels_from_the_table():
    table = chain_table()
    assert LEP.chain_order(reversed(MODELS)) == MODELS
    panels = LEP.chain_panels(table)

    def panel(start: str) -> pd.Series:
        (frame,) = [frame for title, _, frame in panels if title.startswith(start)]
        return frame.set_index(["model", "series"])["value"]

    assert len(panels) == 6
    bench = panel("benchmarks")
    assert bench[("T", "0-shot")] == pytest.approx((0.41 + 0.2) / 2)  # acc and macro-F1, the headline ones
    assert bench[("T", "3-shot")] == pytest.approx((0.51 + 0.2) / 2)
    copy = panel("copy task")
    assert copy[("D bpe", "en")] == pytest.approx(0.25)
    bpc = panel("bits per character")
    assert len(bpc) == 10 and bpc[("S", "ru")] == pytest.approx(1.5)  # per-source rows left out
    assert panel("characters per token")[("LEP bpe conversion", "en")] == pytest.approx(2.3)
    speed = panel("generation speed: characters")
    assert speed[("LEP bpe conversion", "chars per second")] == pytest.approx(130.0)
    assert panel("generation speed: tokens")[("S", "tokens per second")] == pytest.approx(50.0)


def test_the_chain_figure_is_drawn_from_the_table_alone_and_reproducible(tmp_path):
    assert "lep_chain_ru" in figures.FIGURES
    (tmp_path / "tables").mkdir()
    chain_table().to_csv(tmp_path / "tables" / "lep_chain_ru.csv", index=False)
    path = figures.make("lep_chain_ru", tmp_path)
    assert path == tmp_path / "figures" / "lep_chain_ru.png"
    first = path.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    assert figures.make("lep_chain_ru", tmp_path).read_bytes() == first
    # a table without speed or copy rows still draws (those panels say so)
    table = chain_table()
    table = table[table["kind"] != "copy"].drop(columns=["chars_per_second", "tokens_per_second"])
    table.to_csv(tmp_path / "tables" / "lep_chain_ru.csv", index=False)
    assert figures.make("lep_chain_ru", tmp_path).read_bytes() != first


def test_the_chain_summary_compares_every_model_with_t():
    import importlib.util

    rows = []
    models = (("T", 1.6, 1.4, [0.5, 0.3], 0.2, 100.0),
              ("LEP extension conversion", 2.4, 4.2, [0.5, 0.2], 0.1, 210.0),
              ("LEP extension conversion calibrated", 2.3, 4.2, [0.45, 0.3], 0.97, 200.0))
    for model, bpc, cpt, acc, copy, speed in models:
        for metric, value in (("bits_per_char", bpc), ("chars_per_token", cpt)):
            rows.append({"model": model, "language": "ru", "source": "all", "metric": metric, "value": value})
            rows.append({"model": model, "language": "en", "source": "all", "metric": metric, "value": value / 2})
        for task, value in zip(("translation_choice", "word_sense"), acc):
            for shots in (0, 3):
                rows.append({"model": model, "language": "ru", "task": task, "kind": "multiple_choice", "n_shot": shots,
                             "metric": "acc", "value": value, "chars_per_second": speed})
        rows.append({"model": model, "language": "ru", "task": "copy", "kind": "copy", "n_shot": 0,
                     "metric": "copy_rate", "value": copy, "chars_per_second": speed})
    summary = LEP.chain_summary(pd.DataFrame(rows)).set_index("model")
    assert list(summary.index) == ["T", "LEP extension conversion", "LEP extension conversion calibrated"]
    conversion = summary.loc["LEP extension conversion"]
    assert conversion["score_mean"] == pytest.approx(0.35) and summary.loc["T", "score_mean"] == pytest.approx(0.4)
    assert conversion["score_vs_T"] == pytest.approx(0.35 / 0.4)
    assert conversion["chars_per_token_vs_T"] == pytest.approx(3.0) and conversion["speed_vs_T"] == pytest.approx(2.1)
    assert conversion["bpc_ru"] == 2.4 and conversion["bpc_en"] == 1.2 and conversion["copy_ru"] == 0.1

    spec = importlib.util.spec_from_file_location("lep_chain_summary", PROJ_ROOT / "scripts" / "lep_chain_summary.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    verdicts = {(model, what.split(" ")[0]): met for model, what, met in script.checks(summary.reset_index())}
    assert verdicts == {("LEP extension conversion", "mean"): False, ("LEP extension conversion", "chars/token"): True,
                        ("LEP extension conversion", "chars/s"): True,
                        ("LEP extension conversion calibrated", "copy"): True}


def test_the_cpu_donor_sweep_reuses_the_trained_donor_and_the_chains_t(tmp_path):
    """lep_cpu_donor_ru.yaml must name the very runs it is about: vocab_lapt_ru_cpu.yaml's million-token
    donor and lep_chain_ru.yaml's T; a parameter drifting in either file would silently train others."""
    from lib.sweep import load_sweep

    donor_sweep = load_sweep(PARAMS_DIR / "sweeps" / "lep_cpu_donor_ru.yaml")
    runs = {}
    for run in donor_sweep.runs:
        runs.setdefault(run.stage, []).append(run)
    vocab = {r.stage: r.run_dir for r in load_sweep(PARAMS_DIR / "sweeps" / "vocab_lapt_ru_cpu.yaml").runs}
    chain_t = plan()[1]["05_instruction_tuning"][0].run_dir
    (donor,) = runs["03_lapt"]
    (t,) = runs["05_instruction_tuning"]
    assert donor.run_dir == vocab["03_lapt"] and donor.params.max_train_tokens == 1_000_000
    assert t.run_dir == chain_t
    lep = runs["07_lep_propagate"]
    assert sorted(r.params.mode for r in lep) == ["conversion", "swap"]
    assert all(r.params.donor == str(donor.run_dir) and r.params.instruct == str(t.run_dir) for r in lep)
    (evaluate,) = runs["08_evaluate"]
    assert evaluate.params.labels[0] == "T" and evaluate.params.models[0] == str(t.run_dir)
    # its figure draws from a table of the chain's shape
    (tmp_path / "tables").mkdir()
    chain_table().to_csv(tmp_path / "tables" / "lep_cpu_donor_ru.csv", index=False)
    assert figures.make("lep_cpu_donor_ru", tmp_path) == tmp_path / "figures" / "lep_cpu_donor_ru.png"


def test_reproduce_leps_default_grid_is_a_part_of_the_whole_chain(tmp_path):
    """lep_ru.yaml (reproduce lep's default) reuses the chain's runs where it means the same thing (04,
    the donor, T, conversion), and lep_tokenizers_paper.yaml is lep_tokenizers.yaml's paper rows: running
    the whole grid later (--profile cpu, or the chain's own sweep) trains none of them again."""
    from lib.sweep import load_sweep

    small = load_sweep(PARAMS_DIR / "sweeps" / "lep_ru.yaml")
    chain = {r.run_dir for r in plan()[0].runs}
    by_stage: dict[str, list] = {}
    for run in small.runs:
        by_stage.setdefault(run.stage, []).append(run)
    for stage in ("01_prepare_data", "04_vocab_adapt", "03_lapt", "05_instruction_tuning"):
        assert {r.run_dir for r in by_stage[stage]} <= chain, stage
    conversion, calibrated = by_stage["07_lep_propagate"]
    assert conversion.run_dir in chain and conversion.params.mode == "conversion" and not conversion.params.calibrate
    assert calibrated.params.calibrate and calibrated.params.calibration_prompts < 50
    (evaluate,) = by_stage["08_evaluate"]
    assert evaluate.params.labels == ["T", "LEP extension conversion", "LEP extension conversion calibrated"]
    tokenizers = load_sweep(PARAMS_DIR / "sweeps" / "lep_tokenizers.yaml")
    paper_rows = load_sweep(PARAMS_DIR / "sweeps" / "lep_tokenizers_paper.yaml")
    assert {r.run_dir for r in paper_rows.runs} <= {r.run_dir for r in tokenizers.runs}
    assert {r.params.model for r in paper_rows.runs if r.stage == "04_vocab_adapt"} == {"mistral-7b-v0.1", "llama-3"}
    # under the tiny profile the models are the profile's (seconds), not SmolLM2 as the chain pins them
    tiny = load_sweep(PARAMS_DIR / "sweeps" / "lep_ru.yaml", profile="tiny")
    assert {r.params.model for r in tiny.runs if r.stage in ("04_vocab_adapt", "05_instruction_tuning")} == {
        "tiny-random"}
    (tmp_path / "tables").mkdir()
    chain_table().to_csv(tmp_path / "tables" / "lep_ru.csv", index=False)
    assert figures.make("lep_ru", tmp_path) == tmp_path / "figures" / "lep_ru.png"


def test_the_new_rows_donor_sweeps_reuse_the_chains_vocabulary_and_t(tmp_path):
    """lep_new_rows_ru.yaml and lep_new_rows_1m_ru.yaml: the chain's 04 extension and T, and donors that
    train only the new rows, which differ in their size alone; both calibrate, the larger on twice the
    copy examples and again on three times."""
    chain = plan()[1]
    extension = [r for r in chain["04_vocab_adapt"] if r.params.strategy == "extension"]
    donors, copies = [], []
    for name in ("lep_new_rows_ru", "lep_new_rows_1m_ru"):
        by_stage = stages_of(name)
        assert [r.run_dir for r in by_stage["04_vocab_adapt"]] == [r.run_dir for r in extension]
        assert by_stage["05_instruction_tuning"][0].run_dir == chain["05_instruction_tuning"][0].run_dir
        (donor,) = by_stage["03_lapt"]
        assert donor.params.mode == "new_tokens" and donor.params.weight_decay == 0
        assert all(r.params.donor == str(donor.run_dir) for r in by_stage["07_lep_propagate"])
        donors.append(donor)
        copies.append([r.params.calibration_copy_examples for r in by_stage["07_lep_propagate"] if r.params.calibrate])
        (tmp_path / name / "tables").mkdir(parents=True)
        chain_table().to_csv(tmp_path / name / "tables" / f"{name}.csv", index=False)
        assert figures.make(name, tmp_path / name) == tmp_path / name / "figures" / f"{name}.png"
    assert [d.params.max_train_tokens for d in donors] == [250_000, 1_000_000]
    assert copies == [[800], [1600, 2400]]
    assert {k: v for k, v in vars(donors[0].params).items() if k not in ("max_train_tokens", "run_dir")} == \
        {k: v for k, v in vars(donors[1].params).items() if k not in ("max_train_tokens", "run_dir")}


def test_the_parallel_donor_sweep_differs_from_the_million_token_donor_in_its_text_alone(tmp_path):
    """lep_parallel_donor_ru.yaml: lep_new_rows_1m_ru.yaml's donor with train_text corpus+pairs, the
    chain's 04 extension and T, and conversion (no calibration)."""
    chain, million, parallel = plan()[1], stages_of("lep_new_rows_1m_ru"), stages_of("lep_parallel_donor_ru")
    assert [r.run_dir for r in parallel["04_vocab_adapt"]] == [r.run_dir for r in million["04_vocab_adapt"]]
    assert parallel["05_instruction_tuning"][0].run_dir == chain["05_instruction_tuning"][0].run_dir
    (donor,), (monolingual,) = parallel["03_lapt"], million["03_lapt"]
    assert (donor.params.train_text, monolingual.params.train_text) == ("corpus+pairs", "corpus")
    assert {k: v for k, v in vars(donor.params).items() if k not in ("train_text", "run_dir")} == \
        {k: v for k, v in vars(monolingual.params).items() if k not in ("train_text", "run_dir")}
    (lep,) = parallel["07_lep_propagate"]
    assert (lep.params.donor, lep.params.mode, lep.params.calibrate) == (str(donor.run_dir), "conversion", False)
    (tmp_path / "tables").mkdir()
    chain_table().to_csv(tmp_path / "tables" / "lep_parallel_donor_ru.csv", index=False)
    assert figures.make("lep_parallel_donor_ru", tmp_path) == tmp_path / "figures" / "lep_parallel_donor_ru.png"


def test_the_small_extension_sweep_changes_the_vocabulary_size_alone(tmp_path):
    """lep_small_extension_ru.yaml: the parallel donor, parameter for parameter, on extensions of a 3,000-
    and a 2,000-token BPE instead of the chain's 8,000; the chain's T; conversion into it."""
    parallel, small = stages_of("lep_parallel_donor_ru"), stages_of("lep_small_extension_ru")
    (chain_extension,) = parallel["04_vocab_adapt"]
    extensions = small["04_vocab_adapt"]
    assert [r.params.vocab_size for r in extensions] == [3000, 2000]
    for extension in extensions:
        assert {k: v for k, v in vars(extension.params).items() if k not in ("vocab_size", "run_dir")} == \
            {k: v for k, v in vars(chain_extension.params).items() if k not in ("vocab_size", "run_dir")}
    assert small["05_instruction_tuning"][0].run_dir == parallel["05_instruction_tuning"][0].run_dir
    (parallel_donor,) = parallel["03_lapt"]
    donors = small["03_lapt"]
    assert [d.params.model for d in donors] == [str(e.run_dir) for e in extensions]
    for donor in donors:
        assert {k: v for k, v in vars(donor.params).items() if k not in ("model", "run_dir")} == \
            {k: v for k, v in vars(parallel_donor.params).items() if k not in ("model", "run_dir")}
    lep = small["07_lep_propagate"]
    assert [(r.params.donor, r.params.mode, r.params.calibrate) for r in lep] == \
        [(str(d.run_dir), "conversion", False) for d in donors]
    (tmp_path / "tables").mkdir()
    chain_table().to_csv(tmp_path / "tables" / "lep_small_extension_ru.csv", index=False)
    assert figures.make("lep_small_extension_ru", tmp_path) == tmp_path / "figures" / "lep_small_extension_ru.png"


def test_the_lora_instruct_sweep_changes_t_alone(tmp_path):
    """lep_lora_instruct_ru.yaml: lep_small_extension_ru.yaml's 3,000-token donor (the same run) into two
    Ts that differ from the chain's in the mode (lora_embeddings) and the learning rate alone."""
    small, lora = stages_of("lep_small_extension_ru"), stages_of("lep_lora_instruct_ru")
    assert [r.run_dir for r in lora["03_lapt"]] == [small["03_lapt"][0].run_dir]
    chain_t = small["05_instruction_tuning"][0]
    ts = lora["05_instruction_tuning"]
    assert [(t.params.mode, t.params.learning_rate) for t in ts] == [("lora_embeddings", 1e-3),
                                                                      ("lora_embeddings", 2e-4)]
    for t in ts:
        assert {k: v for k, v in vars(t.params).items() if k not in ("mode", "learning_rate", "run_dir")} == \
            {k: v for k, v in vars(chain_t.params).items() if k not in ("mode", "learning_rate", "run_dir")}
    donor = str(small["03_lapt"][0].run_dir)
    assert [(r.params.instruct, r.params.donor, r.params.mode, r.params.calibrate)
            for r in lora["07_lep_propagate"]] == \
        [(str(ts[0].run_dir), donor, "conversion", False), (str(ts[1].run_dir), donor, "conversion", False),
         (str(ts[1].run_dir), donor, "conversion", True), (str(ts[0].run_dir), donor, "overlap", False),
         (str(ts[0].run_dir), donor, "swap", False)]
    assert lora["07_lep_propagate"][2].params.calibration_copy_examples == 2400
    # each propagated model is measured against its own T in the summary
    labels = [label for r in lora["08_evaluate"] for label in r.params.labels]
    assert [LEP.reference_T(label, labels) for label in labels] == [labels[i] for i in (0, 0, 2, 2, 2, 0, 0)]
    (tmp_path / "tables").mkdir()
    chain_table().to_csv(tmp_path / "tables" / "lep_lora_instruct_ru.csv", index=False)
    assert figures.make("lep_lora_instruct_ru", tmp_path) == tmp_path / "figures" / "lep_lora_instruct_ru.png"


def test_the_summary_measures_each_model_against_its_own_t():
    rows = []
    scores = {"T": 0.4, "T lr 2e-4": 0.3, "LEP conversion": 0.2, "LEP conversion into T lr 2e-4": 0.27}
    for model, score in scores.items():
        rows.append({"model": model, "language": "ru", "task": "word_sense", "kind": "multiple_choice", "n_shot": 0,
                     "metric": "acc", "value": score})
    summary = LEP.chain_summary(pd.DataFrame(rows)).set_index("model")
    assert summary["score_vs_T"].to_dict() == pytest.approx(
        {"T": 1.0, "T lr 2e-4": 1.0, "LEP conversion": 0.5, "LEP conversion into T lr 2e-4": 0.9})
    assert summary.loc["LEP conversion into T lr 2e-4", "T"] == "T lr 2e-4"
    assert LEP.reference_T("D", ["D", "S"]) is None
