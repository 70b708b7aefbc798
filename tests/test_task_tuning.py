"""06_task_tuning and 05_instruction_tuning: parameters, examples, chains, figure (fast parts)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from lib import params as P
from lib import runs, stages
from lib.stages import task_tuning as TT
from lib.tasks.base import Item, PromptFormat, Task, TaskError
from lib.training.lora import LORA_FIELDS


def small_task(n_train: int = 20) -> Task:
    classes = ("Writer", "Calc", "Impress")
    train = [Item(f"tr{i}", {"text": f"paragraph {i}"}, i % 3) for i in range(n_train)]
    test = [Item(f"te{i}", {"text": f"other {i}"}, i % 3) for i in range(6)]
    return Task(name="topic_classification", language="pl", kind="classification",
                prompt=PromptFormat("{text}\nModule:"), classes=classes,
                splits={"train": train, "validation": [], "test": test})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"route": "classifier", "task": "translation_choice_from_en"}, "not a classification task"),
        ({"task": "word_sense_choice"}, "exists for ru"),
        ({"task": "topic_classification:tr"}, "is in tr"),
        ({"task": "nonsense"}, "unknown offline task"),
        ({"task": "copy"}, "test split alone"),
        ({"chain": "c i t"}, "without spaces"),
        ({"route": "prompt"}, "route must be one of"),
        ({"mode": "qlora"}, "mode must be one of"),
        ({"mode": "full", "lora_r": 8}, "trains no LoRA"),
        ({"shots": []}, "shots"),
        ({"learning_rate": 0}, "learning_rate"),
    ],
)
def test_task_tuning_params_errors(overrides, message):
    with pytest.raises(P.ParamsError, match=message):
        stages.resolve("06_task_tuning", overrides=overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"language": "en"}, "unknown language 'en'; known: pl, tr, ru"),
        ({"language": "xx"}, "unknown language"),
        ({"packing": "yes"}, "packing must be one of"),
        ({"chat_template": "llama"}, "chat_template must be one of"),
        ({"sources": []}, "at least one source"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
    ],
)
def test_instruction_tuning_params_errors(overrides, message):
    with pytest.raises(P.ParamsError, match=message):
        stages.resolve("05_instruction_tuning", overrides=overrides)


def test_lora_settings_default_to_curie():
    p = stages.resolve("06_task_tuning", overrides={"lora_r": 8})
    assert p.lora_settings() == {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["all-linear"]}
    assert stages.resolve("05_instruction_tuning", overrides={"mode": "full"}).lora_settings() is None


def test_sft_examples_use_the_tasks_zero_shot_prompt_and_answer():
    task = small_task()
    rows = TT.sft_examples(task, task.splits["train"][:2])
    assert rows[0] == {"prompt": "paragraph 0\nModule:", "completion": " Writer"}
    assert rows[1]["completion"] == " Calc"


def test_train_items_are_a_fixed_subset_of_the_train_split():
    task = small_task(50)
    first = task.train_items(10, seed=1)
    assert len(first) == 10 and first == task.train_items(10, seed=1)
    assert {i.id for i in first} <= {i.id for i in task.splits["train"]}
    assert task.train_items(10, seed=2) != first
    assert len(task.train_items(0, seed=1)) == 50
    empty = Task(name="t", language="pl", kind="classification", prompt=PromptFormat("{text}"),
                 classes=("a", "b"), splits={"train": [], "test": []})
    with pytest.raises(TaskError, match="no train items"):
        empty.train_items(10, seed=1)


def test_base_model_of_follows_a_chain_of_run_directories(tmp_path):
    def fake_run(name: str, parent: str):
        run = tmp_path / name
        (run / "model").mkdir(parents=True)
        (run / runs.PARAMS_FILE).write_text(yaml.safe_dump({"model": parent}))
        return str(run)

    c = fake_run("c", "smollm2-135m-instruct")
    ci = fake_run("ci", c)
    assert runs.base_model_of(ci) == "smollm2-135m-instruct"
    assert runs.base_model_of("gemma3-270m") == "gemma3-270m"
    assert runs.base_model_of(str(tmp_path / "missing")) == str(tmp_path / "missing")


def test_chain_labels_colour_by_chain_and_loss():
    from lib.stages.task_tuning import chain_labels

    table = pd.DataFrame([
        {"stage": "base", "route": "none", "loss": None, "n_shot": 0.0},
        {"stage": "t", "route": "classifier", "loss": "weighted", "n_shot": None},
    ])
    out = chain_labels(table)
    assert list(out["model"]) == ["base · none", "t · classifier (weighted CE)"]
    assert list(out["n_shot"]) == [0, 0]


def test_sweep_files_chain_their_steps():
    from lib.paths import PARAMS_DIR
    from lib.sweep import load_sweep

    plan = load_sweep(PARAMS_DIR / "sweeps" / "llamaturk_tr.yaml")
    by_stage = {}
    for run in plan.runs:
        by_stage.setdefault(run.stage, []).append(run)
    lapt_dir = str(by_stage["03_lapt"][0].run_dir)
    instr = by_stage["05_instruction_tuning"][0]
    assert instr.params.model == lapt_dir
    chains = {r.params.chain: r.params.model for r in by_stage["06_task_tuning"]}
    assert chains == {"base": "smollm2-135m-instruct", "t": "smollm2-135m-instruct",
                      "c-i-t": str(instr.run_dir)}
    pl = load_sweep(PARAMS_DIR / "sweeps" / "task_tuning_pl.yaml")
    routes = sorted((r.params.route, r.params.task, r.params.weighted_loss) for r in pl.runs
                    if r.stage == "06_task_tuning")
    assert ("classifier", "topic_classification", False) in routes
    assert ("classifier", "topic_classification", True) in routes
    assert pl.table == "task_tuning.csv"


# ---------------------------------------------------------------- runs on a tiny corpus


@pytest.fixture(scope="module")
def tiny_pl(isolated_home):
    from lib.corpus import build_corpus

    build_corpus("pl", tag="tt-test", sources=["libreoffice"], max_docs_per_source=60, test_fraction=0.3,
                 validation_fraction=0.1, min_chars=100, tokenizers=["tiny-random"])
    return "tt-test"


def tiny_params(**overrides):
    return stages.resolve("06_task_tuning", profile="tiny", overrides={"corpus_tag": "tt-test", **overrides})


@pytest.mark.slow
def test_sft_route_trains_merges_and_evaluates(tiny_pl, tmp_path):
    params = tiny_params(task="translation_choice_from_en", route="sft", chain="t", shots=[0])
    setup = TT.prepare(params, tmp_path)
    outcome, model_dir = TT.train_sft(setup, log=lambda *a: None)
    assert outcome.train_metrics["global_step"] == params.max_steps
    assert (model_dir / "config.json").is_file() and (tmp_path / "adapter").is_dir()
    rows, predictions = TT.evaluate_prompted(setup, str(model_dir), log=lambda *a: None)
    assert {r["metric"] for r in rows} == {"acc", "acc_norm"}
    assert all(r["stage"] == "t" and r["route"] == "sft" and r["model"] == "tiny-random" for r in rows)
    assert len(predictions) == rows[0]["n"] > 0


@pytest.mark.slow
def test_classifier_route_rows_say_which_loss(tiny_pl, tmp_path):
    params = tiny_params(route="classifier", chain="t", weighted_loss=False, max_steps=0, num_epochs=1.0)
    setup = TT.prepare(params, tmp_path)
    result, rows = TT.train_and_evaluate_classifier(setup, log=lambda *a: None)
    assert {r["metric"] for r in rows} == {"acc", "macro_f1"}
    assert all(r["loss"] == "unweighted" and r["route"] == "classifier" and r["stage"] == "t" for r in rows)
    assert result.class_weights is None
    from lib.models import ModelSpecError, load_model

    with pytest.raises(ModelSpecError, match="sequence classifier"):
        load_model(str(tmp_path))  # the classifier's run directory is not a language model


# A valid value other than the default for every field some route does not read.
ALTERNATIVES = {"mode": "full", "lora_r": 8, "lora_alpha": 8, "lora_dropout": 0.1, "lora_target_modules": ["q_proj"],
                "learning_rate": 0.01, "lr_scheduler": "linear", "warmup_ratio": 0.1, "num_epochs": 2.0,
                "max_steps": 2, "batch_size": 4, "grad_accum": 4, "max_length": 128, "max_train_items": 10,
                "eval_steps": 5, "save_steps": 5, "log_steps": 1, "precision": "fp32", "weighted_loss": False,
                "shots": [0], "eval_dtype": "float32"}


@pytest.mark.parametrize("route", TT.ROUTES)
def test_every_parameter_a_route_cannot_use_is_refused_by_name(route):
    assert TT.UNUSED_BY_ROUTE[route] <= set(ALTERNATIVES)
    for name in sorted(TT.UNUSED_BY_ROUTE[route]):
        with pytest.raises(P.ParamsError, match=rf"parameter\(s\) {name} cannot change what runs for route '{route}'"):
            stages.resolve("06_task_tuning", overrides={"route": route, name: ALTERNATIVES[name]})
    used = sorted(set(ALTERNATIVES) - TT.UNUSED_BY_ROUTE[route] - set(LORA_FIELDS) - {"mode"})
    params = stages.resolve("06_task_tuning", overrides={"route": route} | {k: ALTERNATIVES[k] for k in used})
    assert all(getattr(params, k) == ALTERNATIVES[k] for k in used)  # every other one is kept


def test_a_profile_value_a_route_cannot_use_goes_back_to_its_default():
    """The tiny profile sizes training for every route; the evaluation-only route records defaults."""
    none = stages.resolve("06_task_tuning", profile="tiny", overrides={"route": "none"})
    defaults = TT.TaskTuningParams()
    assert (none.max_steps, none.learning_rate, none.batch_size) == (0, defaults.learning_rate, 8)
    assert none.shots == [0, 1]  # read by the prompted evaluation, so the profile's value stays


def test_classifier_route_settings_reach_the_trainer():
    from transformers import TrainingArguments

    from lib.training.arguments import TrainSettings, trainer_arguments

    params = stages.resolve("06_task_tuning", overrides={
        "route": "classifier", "max_steps": 2, "grad_accum": 4, "lr_scheduler": "constant_with_warmup",
        "warmup_ratio": 0.2, "log_steps": 1, "save_steps": 1})
    args = trainer_arguments(TrainSettings.of(params), output_dir="/tmp/x", precision="fp32", device="cpu",
                             arguments_class=TrainingArguments)
    assert (args.max_steps, args.gradient_accumulation_steps, args.lr_scheduler_type.value, args.warmup_steps,
            args.logging_steps, args.save_steps) == (2, 4, "constant_with_warmup", 0.2, 1, 1)
