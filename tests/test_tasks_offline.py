"""Offline tasks on small corpora built for these tests: split like the corpus, no leak."""

from __future__ import annotations

from collections import Counter

import pytest

from lib.tasks.offline import MODULES, N_OPTIONS, build_offline_task, offline_task_ids, split_function

TAG = "tasks-test"
# Few documents, but a large test fraction so that every task has test items.
CORPUS = dict(tag=TAG, max_docs_per_source=40, test_fraction=0.3, validation_fraction=0.1, min_chars=100)
SOURCES = {"pl": ["libreoffice"], "tr": ["libreoffice", "wordnet"], "ru": ["libreoffice", "rl_wsd"]}


@pytest.fixture(scope="module")
def corpora(isolated_home):
    from lib.corpus import build_corpus

    for language, sources in SOURCES.items():
        build_corpus(language, sources=sources, **CORPUS)
    return isolated_home


@pytest.fixture(scope="module")
def tasks(corpora):
    return {tid: build_offline_task(*tid.split(":"), corpus_tag=TAG) for tid in offline_task_ids()}


def test_registry():
    ids = offline_task_ids()
    assert {i.split(":")[1] for i in ids} == {"pl", "tr", "ru"}
    assert "word_sense_choice:ru" in ids and "definition_to_word:tr" in ids
    assert "word_sense_choice:pl" not in ids
    assert offline_task_ids("pl") == [i for i in ids if i.endswith(":pl")]


def test_every_task_has_items_with_valid_labels(tasks):
    for tid, task in tasks.items():
        test = task.splits["test"]
        assert test, f"{tid} has no test items"
        assert task.fewshot_pool(), f"{tid} has no few-shot pool"
        if task.kind == "multiple_choice":
            assert all(0 <= i.label < len(i.choices) for i in test)
            assert all(len(set(i.choices)) == len(i.choices) for i in test), f"{tid}: duplicate options"
        if task.kind == "classification":
            assert task.classes == tuple(MODULES.values())


def test_translation_distractors(tasks):
    for language in ("pl", "tr", "ru"):
        task = tasks[f"translation_choice_from_en:{language}"]
        pairs = {i.fields["target"]: i for i in task.splits["test"]}
        for item in task.splits["test"]:
            assert len(item.choices) == N_OPTIONS
            assert item.choices[item.label] == item.fields["target"]
            lengths = [len(c) for c in item.choices]
            assert all(25 <= n <= 300 for n in lengths)
            # distractors are other test paragraphs, never the English source
            assert item.fields["en"] not in item.choices
            assert all(c in pairs for c in item.choices)
        labels = Counter(i.label for i in task.splits["test"])
        assert len(labels) > 1  # the right answer is not always in the same place
        reverse = tasks[f"translation_choice_to_en:{language}"]
        assert all(i.choices[i.label] == i.fields["en"] for i in reverse.splits["test"])


def _train_text(language: str) -> str:
    from lib.corpus import load_corpus

    return "\n".join(load_corpus(language, TAG)["train"]["text"])


def test_no_test_item_text_is_in_the_train_split(tasks):
    """The promise of the offline tasks: continued pre-training on the train split never
    saw the text of a test item (checked as substrings of the built corpus)."""
    from lib.corpus import rl_wsd_items

    raw_wsd = {w.id: w.text for w in rl_wsd_items()}
    train = {language: _train_text(language) for language in SOURCES}
    for tid, task in tasks.items():
        language = task.language
        for item in task.splits["test"]:
            if task.name.startswith("translation_choice"):
                texts = [item.fields["target"], item.fields["en"], *item.choices]
            elif task.name == "word_sense_choice":
                texts = [raw_wsd[item.id]]
            elif task.name.startswith("definition_to_word"):
                texts = [item.fields["definition"]]
            else:
                texts = list(item.fields.values())
            for text in texts:
                assert text not in train[language], f"{tid} test item {item.id} is in the train split"


def test_items_take_the_corpus_split_of_their_group(tasks):
    from lib.corpus import load_corpus

    for language in SOURCES:
        split_of = split_function(language, TAG)
        test_groups = set(load_corpus(language, TAG)["test"]["group"])
        for tid, task in tasks.items():
            if task.language != language:
                continue
            assert set(task.splits) == {"train", "validation", "test"}
            for item in task.splits["test"]:
                assert split_of(item.group) == "test", f"{tid} {item.id}"
                if task.name == "topic_classification":
                    assert item.group in test_groups
            for item in task.splits["validation"]:
                assert split_of(item.group) == "validation", f"{tid} {item.id}"
            for item in task.fewshot_pool():
                assert split_of(item.group) == "train", f"{tid} shot {item.id}"


def test_tasks_are_deterministic(corpora, tasks):
    again = build_offline_task("translation_choice_from_en", "pl", corpus_tag=TAG)
    first = tasks["translation_choice_from_en:pl"]
    assert [(i.id, i.label, i.choices) for i in again.splits["test"]] == \
           [(i.id, i.label, i.choices) for i in first.splits["test"]]


def test_unknown_task_and_language():
    from lib.tasks.base import TaskError

    with pytest.raises(TaskError, match="unknown offline task"):
        build_offline_task("sentiment", "pl")
    with pytest.raises(TaskError, match="exists for ru"):
        build_offline_task("word_sense_choice", "pl")
