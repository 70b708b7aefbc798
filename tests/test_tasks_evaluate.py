"""Evaluation rows: tidy, with chance and intervals; shuffled labels score at chance."""

from __future__ import annotations

import math
import random

import pytest

from lib.tasks.base import Item, PromptFormat, Task, shuffled_labels
from lib.tasks.evaluation import evaluate_task, resolve_task_ids

ROW_KEYS = {"model", "language", "task", "n_shot", "metric", "value", "n", "ci_low", "ci_high", "chance",
            "majority", "n_available", "max_items", "kind", "split", "sampling", "seed", "dtype"}


@pytest.fixture(scope="module")
def tiny(shared_cache):
    from lib.models import load_model_and_tokenizer

    return load_model_and_tokenizer("tiny-random")


def _shortest_is_right(n: int = 240) -> Task:
    """A task a random model 'solves': the right option is always the shortest, and a random
    model gives short continuations the higher total log-likelihood."""
    rng = random.Random(0)
    words = ["kot", "pies", "dom", "rzeka", "okno", "las", "miasto", "droga"]

    def item(i: int) -> Item:
        options = [" ".join(rng.choices(words, k=k)) for k in (1, 6, 7, 8)]
        order = list(range(4))
        rng.shuffle(order)
        return Item(f"i{i}", {"q": f"pytanie {i}"}, order.index(0), tuple(options[j] for j in order))

    return Task("shortest", "pl", "multiple_choice", PromptFormat("Q: {q}\nA:"),
                {"train": [item(i) for i in range(10)], "test": [item(i) for i in range(10, 10 + n)]})


def test_rows_are_tidy(tiny):
    model, tokenizer = tiny
    task = _shortest_is_right(60)
    rows, predictions = evaluate_task(model, tokenizer, task, 2, model_name="tiny-random", max_items=50,
                                      n_bootstrap=200)
    assert [r["metric"] for r in rows] == ["acc", "acc_norm"]
    for row in rows:
        assert ROW_KEYS <= set(row)
        assert row["n"] == 50 and row["n_available"] == 60 and row["n_shot"] == 2
        assert row["chance"] == pytest.approx(0.25)
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    assert len(predictions) == 50 and {"item", "label", "pred", "logprobs"} <= set(predictions[0])
    again, _ = evaluate_task(model, tokenizer, task, 2, model_name="tiny-random", max_items=50,
                             n_bootstrap=200)
    assert again == rows  # deterministic


def test_shuffled_labels_score_at_chance(tiny):
    model, tokenizer = tiny
    task = _shortest_is_right()
    (real, _), _ = evaluate_task(model, tokenizer, task, 0, model_name="tiny-random", n_bootstrap=500)
    assert real["ci_low"] > 0.9  # the model does see something here
    (shuffled, _), _ = evaluate_task(model, tokenizer, shuffled_labels(task, seed=1), 0,
                                     model_name="tiny-random", n_bootstrap=500)
    assert shuffled["ci_low"] <= shuffled["chance"] <= shuffled["ci_high"]
    assert abs(shuffled["value"] - 0.25) < 0.1


def test_classification_and_generation_rows(tiny):
    model, tokenizer = tiny
    items = [Item(f"c{i}", {"t": f"tekst {i}"}, i % 3) for i in range(30)]
    task = Task("toy_cls", "pl", "classification", PromptFormat("{t}\nKlasa:"),
                {"train": items[:6], "test": items[6:]}, classes=("Writer", "Calc", "Impress"))
    rows, _ = evaluate_task(model, tokenizer, task, 1, model_name="tiny-random", n_bootstrap=100)
    by_metric = {r["metric"]: r for r in rows}
    assert set(by_metric) == {"acc", "macro_f1"}
    assert by_metric["acc"]["chance"] == pytest.approx(1 / 3)
    assert by_metric["acc"]["majority"] == pytest.approx(8 / 24)  # labels 0, 1, 2 in turn
    assert 0 < by_metric["macro_f1"]["chance"] < 0.5
    gen_items = [Item(f"g{i}", {"d": f"tanım {i}"}, target="kedi") for i in range(8)]
    gen = Task("toy_gen", "tr", "generation", PromptFormat("Tanım: {d}\nKelime:"),
               {"train": gen_items[:3], "test": gen_items[3:]}, max_new_tokens=4)
    rows, predictions = evaluate_task(model, tokenizer, gen, 1, model_name="tiny-random", n_bootstrap=50)
    assert [r["metric"] for r in rows] == ["exact_match", "chrf"]
    assert all(math.isnan(r["chance"]) for r in rows)
    assert {"reference", "output"} <= set(predictions[0])


def test_empty_task_gives_n_zero_rows(tiny):
    model, tokenizer = tiny
    task = Task("empty", "pl", "multiple_choice", PromptFormat("{q}"), {"train": [], "test": []})
    rows, predictions = evaluate_task(model, tokenizer, task, 3, model_name="tiny-random")
    assert [r["n"] for r in rows] == [0, 0] and predictions == []
    assert all(math.isnan(r["value"]) for r in rows)


def test_task_names_resolve():
    assert resolve_task_ids(["offline"], "ru") == [
        "translation_choice_from_en:ru", "translation_choice_to_en:ru", "topic_classification:ru",
        "word_sense_choice:ru"]
    assert resolve_task_ids(["topic_classification", "xcopa:tr"], "pl") == [
        "topic_classification:pl", "xcopa:tr"]
    assert "belebele:tr" in resolve_task_ids(["hub"], "tr")
    from lib.tasks.base import TaskError

    with pytest.raises(TaskError, match="unknown task 'nope'"):
        resolve_task_ids(["nope"], "pl")
    with pytest.raises(TaskError, match="exists for tr, not 'pl'"):
        resolve_task_ids(["xcopa"], "pl")
