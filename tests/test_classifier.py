"""The classifier route (lib.classifier): class weights, the weighted loss, the checks that run before
any model loads, and one short LoRA run on a synthetic keyword task that the tiny random model must learn."""

from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from lib.classifier import (
    ClassifierTrainer,
    class_weights,
    classification_loss,
    classifier_texts,
    lora_settings,
    predict_logits,
    train_classifier,
)
from lib.params import ParamsError
from lib.tasks.base import Item, PromptFormat, Task, TaskError
from lib.training import TrainingSetupError
from lib.training.arguments import TrainSettings

CLASSES = ("fruit", "water", "machine")
KEYWORDS = ("apple", "river", "engine")
FILLER = "the a report today note short long page text small big item list view form data value table chart".split()
TRAIN = (40, 16, 12)  # imbalanced, as the real topic task is
TEST = (30, 10, 6)


def keyword_items(counts: tuple[int, ...], prefix: str, rng: random.Random) -> list[Item]:
    """Neutral filler words with the class's keyword somewhere among them."""
    items = []
    for label, n in enumerate(counts):
        for i in range(n):
            words = rng.choices(FILLER, k=rng.randint(4, 9))
            words.insert(rng.randrange(len(words) + 1), KEYWORDS[label])
            items.append(Item(f"{prefix}{label}-{i:02d}", {"text": " ".join(words)}, label))
    return items


def keyword_task(train: tuple[int, ...] = TRAIN, test: tuple[int, ...] = TEST) -> Task:
    rng = random.Random(0)
    return Task("keyword_topic", "en", "classification", PromptFormat("{text}\nTopic:"),
                {"train": keyword_items(train, "tr", rng), "test": keyword_items(test, "te", rng)},
                classes=CLASSES)


# ---------------------------------------------------------------- weights and loss


def test_class_weights_balanced():
    # 10 labels, 3 classes present: n / (3 * count)
    assert class_weights([0] * 6 + [1] * 3 + [2], 3) == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    # classes 1 and 3 absent: weight 0, and the others divide by the 2 classes present
    assert class_weights([0, 0, 0, 2], 4) == pytest.approx([4 / 6, 0.0, 4 / 2, 0.0])
    from sklearn.utils.class_weight import compute_class_weight

    labels = [2, 0, 0, 1, 1, 1, 1, 2, 0, 1]
    sk = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert class_weights(labels, 3) == pytest.approx(list(sk))
    with pytest.raises(ValueError, match="outside"):
        class_weights([0, 3], 3)


LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, 1.0, 1.0], [0.0, -2.0, 3.0]])
LABELS = torch.tensor([0, 2, 1, 2, 0])
WEIGHTS = torch.tensor([0.5, 2.0, 1.5])


def test_weighted_loss_by_hand():
    nll = -torch.log_softmax(LOGITS, dim=-1)[torch.arange(len(LABELS)), LABELS]
    by_hand = float((WEIGHTS[LABELS] * nll).sum() / WEIGHTS[LABELS].sum())
    weighted = float(classification_loss(LOGITS, LABELS, WEIGHTS))
    unweighted = float(classification_loss(LOGITS, LABELS))
    assert weighted == pytest.approx(by_hand, abs=1e-6)
    assert weighted == pytest.approx(float(F.cross_entropy(LOGITS, LABELS, weight=WEIGHTS)), abs=1e-6)
    assert unweighted == pytest.approx(float(nll.mean()), abs=1e-6)
    assert abs(weighted - unweighted) > 0.1


def test_trainer_loss_uses_the_weights():
    """ClassifierTrainer.compute_loss on fixed logits: the weighted loss when weighted, the mean otherwise."""
    model = lambda **inputs: SimpleNamespace(logits=LOGITS.to(torch.bfloat16).float())  # noqa: E731

    def loss(weights):
        return float(ClassifierTrainer.compute_loss(SimpleNamespace(class_weights=weights), model,
                                                    {"input_ids": None, "labels": LABELS}))

    logits = LOGITS.to(torch.bfloat16).float()
    assert loss(WEIGHTS) == pytest.approx(float(F.cross_entropy(logits, LABELS, weight=WEIGHTS)), abs=1e-6)
    assert loss(None) == pytest.approx(float(F.cross_entropy(logits, LABELS)), abs=1e-6)


# ---------------------------------------------------------------- checks before training


def settings(**values) -> TrainSettings:
    """The stage's defaults (06_task_tuning) with ``values`` changed."""
    return TrainSettings(**({"learning_rate": 1e-3, "num_epochs": 1.0, "max_steps": 0, "batch_size": 8,
                             "grad_accum": 1} | values))


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if train_classifier gets as far as loading a model."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the error was raised")
    monkeypatch.setattr("lib.classifier.train.load_classifier", refuse)
    monkeypatch.setattr("lib.models.check_context", refuse)


def test_errors_before_loading(no_loading, tmp_path):
    mc = Task("choice", "en", "multiple_choice", PromptFormat("{text}"),
              {"train": [], "test": [Item("q1", {"text": "x"}, 1, ("a", "b"))]})
    with pytest.raises(TaskError, match=r"choice:en is a multiple_choice task"):
        train_classifier("tiny-random", mc, [], settings(), output_dir=tmp_path)
    task = keyword_task()
    empty = Task(task.name, "en", "classification", task.prompt, {"train": [], "test": task.splits["test"]},
                 classes=CLASSES)
    with pytest.raises(TaskError, match="no train items"):
        train_classifier("tiny-random", empty, [], settings(), output_dir=tmp_path)
    single = Task(task.name, "en", "classification", task.prompt,
                  {"train": [i for i in task.splits["train"] if i.label == 0], "test": task.splits["test"]},
                  classes=CLASSES)
    with pytest.raises(TaskError, match=r"one class only \('fruit'\)"):
        train_classifier("tiny-random", single, single.train_items(), settings(), output_dir=tmp_path)
    items = task.train_items()
    with pytest.raises(TrainingSetupError, match="unknown mode 'qlora'"):
        train_classifier("tiny-random", task, items, settings(), output_dir=tmp_path, mode="qlora")
    with pytest.raises(TrainingSetupError, match="unknown LoRA setting"):
        train_classifier("tiny-random", task, items, settings(), output_dir=tmp_path, lora={"rank": 8})
    with pytest.raises(TrainingSetupError, match="mode is 'full'"):
        train_classifier("tiny-random", task, items, settings(), output_dir=tmp_path, mode="full", lora={"r": 8})
    with pytest.raises(ParamsError, match="batch_size"):
        settings(batch_size=0)
    no_text = Task(task.name, "en", "classification", PromptFormat("{a} / {b}"),
                   {"train": [Item(f"p{i}", {"a": "x", "b": "y"}, i % 2) for i in range(4)],
                    "test": [Item("t", {"a": "x", "b": "y"}, 0)]}, classes=CLASSES)
    with pytest.raises(TaskError, match="inputs='prompt'"):
        train_classifier("tiny-random", no_text, no_text.train_items(), settings(), output_dir=tmp_path)
    assert classifier_texts(no_text, no_text.splits["test"], "prompt") == ["x / y"]
    assert not (tmp_path / "model").exists()


def test_lora_settings():
    assert lora_settings(None) == {"r": 32, "alpha": 16, "dropout": 0.05, "target_modules": ["all-linear"]}
    assert lora_settings({"r": 8, "target_modules": "q_proj"})["target_modules"] == ["q_proj"]
    with pytest.raises(TrainingSetupError, match="classification head"):
        lora_settings({"target_modules": ["q_proj", "score"]})


def test_train_cap_is_deterministic():
    task = keyword_task()
    first = [i.id for i in task.train_items(20, seed=7)]
    assert len(first) == 20 and first == [i.id for i in task.train_items(20, seed=7)]
    assert first != [i.id for i in task.train_items(20, seed=8)]
    assert len(task.train_items()) == sum(TRAIN)


# ---------------------------------------------------------------- one short training run


class WeightSnapshots(TrainerCallback):
    """The PEFT model's parameters when training starts and ends."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.fixture(scope="module")
def trained(isolated_home, tmp_path_factory):
    task = keyword_task()
    out = tmp_path_factory.mktemp("classifier")
    snapshots = WeightSnapshots()
    result = train_classifier("tiny-random", task, task.train_items(), settings(learning_rate=5e-3, num_epochs=5),
                              output_dir=out, max_length=32, n_bootstrap=200, callbacks=[snapshots],
                              log=lambda *a: None)
    return SimpleNamespace(task=task, out=out, result=result, snapshots=snapshots)


def test_learns_keyword_task(trained):
    rows = {r["metric"]: r for r in trained.result.rows}
    assert rows["acc"]["value"] >= rows["acc"]["majority"] + 0.15  # majority 30/46 = 0.65
    assert rows["macro_f1"]["value"] >= rows["macro_f1"]["majority"] + 0.4  # majority 0.26
    assert trained.result.class_weights == pytest.approx(class_weights([0] * 40 + [1] * 16 + [2] * 12, 3))
    metrics = trained.result.train_metrics
    assert metrics["steps"] == math.ceil(sum(TRAIN) / 8) * 5 and metrics["train_loss"] > 0
    losses = [h["loss"] for h in trained.result.history if "loss" in h]
    assert losses[-1] < losses[0]
    confusion = np.array(trained.result.confusion)
    assert confusion.shape == (3, 3) and confusion.sum() == sum(TEST)
    assert list(confusion.sum(axis=1)) == list(TEST)


def test_lora_trains_head_and_adapters_only(trained):
    before, after = trained.snapshots.before, trained.snapshots.after
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    head = [n for n in before if "score.modules_to_save" in n]
    assert head and all(n in changed for n in head)
    assert any("lora_B" in n for n in changed)
    base = [n for n in before if "lora_" not in n and "modules_to_save" not in n]
    assert base and not changed & set(base), "frozen base weights moved"


def test_saved_model_reloads_with_same_predictions(trained):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = trained.result.model_dir
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.id2label == dict(enumerate(CLASSES)) and model.config.pad_token_id == tokenizer.pad_token_id
    trained_head = next(v for n, v in trained.snapshots.after.items() if "score.modules_to_save" in n)
    assert torch.equal(model.score.weight, trained_head)  # the merge kept the trained head
    items = trained.task.eval_items(500)
    logits = predict_logits(model, tokenizer, [i.fields["text"] for i in items], batch_size=8, max_length=32)
    saved = np.array([p["logits"] for p in trained.result.predictions])
    np.testing.assert_allclose(logits, saved, atol=1e-4, rtol=0)
    assert [p["item"] for p in trained.result.predictions] == [i.id for i in items]
    assert [p["pred"] for p in trained.result.predictions] == list(logits.argmax(axis=1))


def test_rows_and_record(trained):
    rows = trained.result.rows
    assert [r["metric"] for r in rows] == ["acc", "macro_f1"]
    expected = {"model", "language", "task", "n_shot", "metric", "value", "n", "ci_low", "ci_high", "chance",
                "majority", "route", "loss", "mode", "n_available", "max_items", "kind", "split", "seed", "dtype"}
    assert expected <= set(rows[0])
    for row in rows:
        assert row | {"route": "classifier", "loss": "weighted", "mode": "lora", "n_shot": 0, "n": sum(TEST),
                      "model": "tiny-random", "task": "keyword_topic", "language": "en"} == row
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    acc, f1 = rows
    assert acc["chance"] == pytest.approx(1 / 3) and acc["majority"] == pytest.approx(30 / 46)
    # always "fruit": F1 2PR/(P+R) with P = 30/46, R = 1 for fruit, 0 for the others, averaged over 3
    assert f1["majority"] == pytest.approx((2 * 30 / (30 + 46)) / 3)
    assert 0.2 < f1["chance"] < 0.4
    record = json.loads((trained.out / "classifier.json").read_text())
    assert record["classes"] == list(CLASSES) and record["train_counts"] == dict(zip(CLASSES, TRAIN))
    assert record["class_weights"] == pytest.approx(trained.result.class_weights)
    assert record["params"]["mode"] == "lora" and record["params"]["lora"]["r"] == 32
    assert record["metrics"][0]["value"] == acc["value"]


def test_full_mode_unweighted(isolated_home, tmp_path):
    """Every weight trains, plain cross-entropy; evaluation is float32 (no autocast left on the model)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    task = keyword_task()
    result = train_classifier("tiny-random", task, task.train_items(16), settings(), output_dir=tmp_path,
                              weighted=False, mode="full", max_eval_items=12, max_length=32, n_bootstrap=0,
                              log=lambda *a: None)
    assert result.class_weights is None and result.train_metrics["steps"] == 2
    assert {(r["loss"], r["mode"], r["n"]) for r in result.rows} == {("unweighted", "full", 12)}
    assert all(math.isnan(r["ci_low"]) for r in result.rows)  # no bootstrap asked for
    model = AutoModelForSequenceClassification.from_pretrained(result.model_dir, dtype=torch.float32)
    texts = [i.fields["text"] for i in task.eval_items(12)]
    logits = predict_logits(model, AutoTokenizer.from_pretrained(result.model_dir), texts, max_length=32)
    np.testing.assert_allclose(logits, [p["logits"] for p in result.predictions], atol=1e-4, rtol=0)


def test_every_training_setting_reaches_the_trainer(isolated_home, tmp_path):
    """Steps, accumulation, schedule and warmup are the caller's (nothing hard-coded in the route)."""
    task = keyword_task()
    result = train_classifier("tiny-random", task, task.train_items(16),
                              settings(max_steps=3, grad_accum=2, lr_scheduler="constant_with_warmup",
                                       warmup_ratio=0.0, log_steps=1),
                              output_dir=tmp_path, max_eval_items=4, max_length=32, n_bootstrap=0, log=lambda *a: None)
    assert result.train_metrics["steps"] == 3
    rates = [h["learning_rate"] for h in result.history if "learning_rate" in h]
    assert len(rates) == 3 and all(rate == pytest.approx(1e-3) for rate in rates)
