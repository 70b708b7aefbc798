"""The copy task (DaruCopy) and the generation speed measure of 08_evaluate, on a small local
corpus built here and the tiny random model."""

from __future__ import annotations

import json
import math
import random

import pytest

from lib.params import ParamsError
from lib.tasks.base import TaskError

TAG = "copy-test"
WORDS = ("dokument plik okno menu przycisk polecenie zmiana tekst akapit strona tabela komórka wiersz "
         "kolumna arkusz wykres obraz rysunek styl szablon format czcionka rozmiar kolor zapisać otworzyć "
         "zamknąć wybrać kliknąć wstawić usunąć który która jeżeli ponieważ następnie również zawsze często "
         "każdy jest może można należy trzeba będzie użytkownik ustawienia narzędzia opcje widok edycja pomoc "
         "język gdzie kiedy jak aby oraz").split()
# one line of several help files (boilerplate): three in train and one in test, where it is unique
# in the split, so only the train-line filter keeps it out of the copy items
SHARED = ("Ten akapit jest wspólny dla wielu plików pomocy, dlatego nie może być pytaniem: "
          + " ".join(WORDS[:18]) + ".")


@pytest.fixture(scope="module")
def corpus(isolated_home, tmp_path_factory):
    """60 one-document groups of four lines (150-300 characters), SHARED added to four of them."""
    from lib.corpus import assign_split, build_corpus

    rng = random.Random(3)
    split_of = {f"g{i:03d}": assign_split(f"g{i:03d}", seed=1, validation_fraction=0.1, test_fraction=0.3)
                for i in range(60)}
    with_shared = ([g for g, s in split_of.items() if s == "train"][:3]
                   + [g for g, s in split_of.items() if s == "test"][:1])

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(9, 14))).capitalize() + "."

    rows = []
    for i in range(60):
        lines = [f"{sentence()} {sentence()}" for _ in range(4)]
        if f"g{i:03d}" in with_shared:
            lines.insert(1, SHARED)
        rows.append({"id": f"d{i:03d}", "group": f"g{i:03d}", "text": "\n".join(lines)})
    path = tmp_path_factory.mktemp("copy") / "docs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    build_corpus("pl", tag=TAG, sources=[f"local:{path}"], seed=1, min_chars=100, test_fraction=0.3,
                 validation_fraction=0.1)
    return TAG


@pytest.fixture(scope="module")
def task(corpus):
    from lib.tasks.offline import build_offline_task

    return build_offline_task("copy", "pl", corpus_tag=corpus)


@pytest.fixture(scope="module")
def tiny(shared_cache):
    from lib.models import load_model_and_tokenizer

    return load_model_and_tokenizer("tiny-random")


@pytest.fixture
def plain_tokenizer(tiny):
    """The tiny model's tokenizer without its chat template (a base model's)."""
    import copy

    tokenizer = copy.deepcopy(tiny[1])
    tokenizer.chat_template = None
    return tokenizer


# ---------------------------------------------------------------- the scoring rule


PARAGRAPH = ("Aby wstawić tabelę do dokumentu, wybierz polecenie Tabela w menu Wstaw, a następnie ustaw "
             "liczbę wierszy i kolumn. Szerokość kolumn można później zmienić, przeciągając ich krawędzie.")


def test_copy_score_rule():
    from lib.tasks.copy_task import copy_score

    n = len(PARAGRAPH)
    assert copy_score(PARAGRAPH, PARAGRAPH) == 1
    assert copy_score(PARAGRAPH[:round(0.95 * n)], PARAGRAPH) == 1  # a 95% prefix: nothing wrong, 5% missing
    assert copy_score(PARAGRAPH[:round(0.8 * n)], PARAGRAPH) == 0  # truncated at 80%
    assert copy_score(PARAGRAPH + " Mam nadzieję, że to pomoże!", PARAGRAPH) == 0  # extra garbage
    assert copy_score("Oto tekst: " + PARAGRAPH, PARAGRAPH) == 0  # a chat model's preamble
    changed = PARAGRAPH.replace("tabel", "TABEL").replace("kolumn", "KOLUMN")  # full length, 10 letters wrong
    assert copy_score(changed, PARAGRAPH) == 0
    assert copy_score("", PARAGRAPH) == 0
    # the limits themselves: 1% of the prediction unmatched passes, 90% of the length passes
    assert copy_score(PARAGRAPH[:round(0.9 * n) + 1], PARAGRAPH) == 1
    assert copy_score(PARAGRAPH[:round(0.9 * n) - 2], PARAGRAPH) == 0


def test_budget_leaves_room_after_a_copy():
    from lib.tasks.copy_task import EXTRA_TOKENS, new_token_budget

    assert new_token_budget(100) >= 100 + EXTRA_TOKENS
    assert new_token_budget(0) == EXTRA_TOKENS


# ---------------------------------------------------------------- items


def test_items_come_only_from_the_test_split(corpus, task):
    from lib.corpus import load_corpus
    from lib.tasks.offline import COPY_CHARS, COPY_PER_DOCUMENT

    built = load_corpus("pl", corpus)
    assert SHARED in "\n".join(built["train"]["text"])  # the fixture's shared line: in train and
    assert "\n".join(built["test"]["text"]).count(SHARED) == 1  # once in test
    train_lines = {line for text in built["train"]["text"] for line in text.split("\n")}
    test_docs = {doc["id"]: doc["text"].split("\n") for doc in built["test"]}
    items = task.splits["test"]
    assert set(task.splits) == {"test"} and task.kind == "copy" and task.n_available == len(items) > 10
    per_doc: dict[str, int] = {}
    for item in items:
        doc_id, _, line = item.id.rpartition("#")
        assert doc_id in test_docs and test_docs[doc_id][int(line)] == item.target
        assert item.target not in train_lines and item.target != SHARED
        assert item.fields["text"] == item.target
        assert COPY_CHARS[0] <= len(item.target) <= COPY_CHARS[1]
        per_doc[doc_id] = per_doc.get(doc_id, 0) + 1
    assert max(per_doc.values()) == COPY_PER_DOCUMENT  # documents have four lines, two are drawn
    assert len({i.target for i in items}) == len(items)
    with pytest.raises(TaskError, match="held-out"):
        from lib.tasks.offline import copy_paragraphs

        copy_paragraphs("pl", corpus, 1234, split="train")


def test_items_are_deterministic_by_seed_and_capped(corpus, task):
    from lib.tasks.offline import build_offline_task

    again = build_offline_task("copy", "pl", corpus_tag=corpus)
    assert [i.id for i in again.splits["test"]] == [i.id for i in task.splits["test"]]
    other = build_offline_task("copy", "pl", corpus_tag=corpus, seed=7)
    assert [i.id for i in other.splits["test"]] != [i.id for i in task.splits["test"]]
    assert task.eval_items(5) == again.eval_items(5) and len(task.eval_items(5)) == 5


def test_copy_is_named_on_its_own_and_zero_shot_only(task):
    from lib.stages.evaluate import EvaluateParams, task_shots
    from lib.tasks.evaluation import resolve_task_ids
    from lib.tasks.offline import offline_task_ids

    assert resolve_task_ids(["copy", "copy:en"], "ru") == ["copy:ru", "copy:en"]
    assert not any(t.startswith("copy:") for t in resolve_task_ids(["offline"], "ru"))
    assert "copy:tr" in offline_task_ids("tr", every=True) and "copy:tr" not in offline_task_ids("tr")
    assert task_shots(task, [0, 3]) == [0]
    with pytest.raises(TaskError, match="zero-shot only"):
        task.prompts(task.eval_items(1), 3)
    from lib import params as P

    with pytest.raises(ParamsError, match="shots"):
        P.build(EvaluateParams, {"tasks": ["copy"], "shots": [3]})


# ---------------------------------------------------------------- prompts and generation


def test_chat_template_used_when_present(tiny, plain_tokenizer):
    from lib.lm_metrics import document_prefix_ids
    from lib.tasks.copy_task import encode_prompts

    _, tokenizer = tiny
    query = "Powtórz poniższy tekst.\nTekst: kot\nPowtórzony tekst:"
    (ids,), style = encode_prompts(tokenizer, [query])
    assert style == "chat"
    rendered = tokenizer.decode(ids)
    assert "<|im_start|>user" in rendered and query in rendered and rendered.rstrip().endswith("assistant")
    (ids,), style = encode_prompts(plain_tokenizer, [query])
    assert style == "plain"
    assert ids == document_prefix_ids(plain_tokenizer) + plain_tokenizer(query, add_special_tokens=False)["input_ids"]


def _echo(paragraphs: list[str], truncate: set[str], budgets: list[tuple[int, int]], prompts: list[str]):
    """A stand-in for generation that answers each copy prompt with its paragraph (cut to 80%
    for those in ``truncate``), and records (asked budget, needed budget) and the prompt."""
    from lib.tasks.copy_task import new_token_budget

    def generate_ids(model, tokenizer, encoded, *, max_new_tokens, batch_size=16):
        out = []
        for ids in encoded:
            prompt = tokenizer.decode(ids)
            prompts.append(prompt)
            paragraph = next(p for p in paragraphs if p in prompt)
            need = new_token_budget(len(tokenizer(paragraph, add_special_tokens=False)["input_ids"]))
            budgets.append((max_new_tokens, need))
            text = paragraph[:int(0.8 * len(paragraph))] if paragraph in truncate else paragraph
            out.append(" " + text + "\nCiąg dalszy, który plain prompt odcina.")
        return out

    return generate_ids


@pytest.mark.parametrize("style", ["chat", "plain"])
def test_evaluation_scores_what_the_model_answers(task, tiny, plain_tokenizer, monkeypatch, style):
    import lib.generation
    from lib.tasks.evaluation import evaluate_task

    model, tokenizer = tiny
    tokenizer = tokenizer if style == "chat" else plain_tokenizer
    items = task.eval_items(6)
    paragraphs = [i.target for i in items]
    budgets: list[tuple[int, int]] = []
    prompts: list[str] = []
    monkeypatch.setattr(lib.generation, "generate_ids", _echo(paragraphs, set(paragraphs[:2]), budgets, prompts))
    rows, predictions = evaluate_task(model, tokenizer, task, 0, model_name="echo", max_items=6,
                                      max_batch_tokens=1024, n_bootstrap=100)
    (row,) = rows
    assert row["metric"] == "copy_rate" and row["prompt_style"] == style and row["n"] == 6
    assert row["n_available"] == task.n_available and row["kind"] == "copy"
    if style == "plain":  # cut at the newline: four copies, two truncated
        assert row["value"] == pytest.approx(4 / 6)
        assert [p["copied"] for p in predictions] == [0, 0, 1, 1, 1, 1]
    else:  # the chat answer is taken whole: the text after the copy makes every item fail
        assert row["value"] == 0
    assert len(budgets) == 6 and all(asked >= need for asked, need in budgets)
    instruction = "Powtórz poniższy tekst dokładnie, bez żadnych zmian ani komentarzy."
    for prompt in prompts:
        if style == "plain":  # instruction, paragraph, then the cue to answer after
            assert prompt.startswith("<|endoftext|>" + instruction) and prompt.endswith("\n\nPowtórzony tekst:")
        else:  # one user turn: the instruction and the paragraph alone
            assert "<|im_start|>user\n" + instruction + "\n\n" in prompt and "Powtórzony" not in prompt


# ---------------------------------------------------------------- speed


def test_speed_measure(tiny):
    from lib.speed import generation_speed

    model, tokenizer = tiny
    prompts = ["Aby wstawić tabelę, wybierz polecenie.", "Чтобы вставить таблицу,", "Tablo eklemek için"]
    speed = generation_speed(model, tokenizer, prompts, new_tokens=6, batch_size=2)
    assert speed.tokens == 3 * 6 and speed.prompts == 3 and len(speed.texts) == 3
    assert speed.chars == sum(len(t) for t in speed.texts) > 0
    for value in (speed.seconds, speed.tokens_per_second, speed.chars_per_second, speed.tokens_per_char):
        assert value > 0 and math.isfinite(value)
    assert speed.tokens_per_char == pytest.approx(speed.tokens / sum(len(t) for t in speed.texts))
    assert speed.chars_per_second == pytest.approx(speed.chars / speed.seconds)
    with pytest.raises(ValueError, match="new_tokens"):
        generation_speed(model, tokenizer, prompts, new_tokens=0)
    with pytest.raises(ValueError, match="non-empty"):
        generation_speed(model, tokenizer, [])


def test_speed_parameters_are_checked():
    from lib import params as P
    from lib.stages.evaluate import EvaluateParams

    with pytest.raises(ParamsError, match="speed_prompts"):
        P.build(EvaluateParams, {"speed_prompts": -1})
    with pytest.raises(ParamsError, match="speed_new_tokens"):
        P.build(EvaluateParams, {"speed_prompts": 4, "speed_new_tokens": 0})
    with pytest.raises(ParamsError, match="speed_new_tokens"):  # set while the measure is off
        P.build(EvaluateParams, {"speed_new_tokens": 64})
    with pytest.raises(ParamsError, match="speed_prompts"):
        P.build(EvaluateParams, {"speed_prompts": "4"})


def test_stage_adds_speed_columns_per_model(corpus, tiny):
    from lib import params as P
    from lib.stages.evaluate import SPEED_COLUMNS, EvaluateParams, evaluate_models
    from lib.tasks.offline import build_offline_task

    params = P.build(EvaluateParams, {"models": ["tiny-random"], "tasks": ["copy"], "language": "pl",
                                      "corpus_tag": corpus, "shots": [0, 1], "max_items": 1, "n_bootstrap": 10,
                                      "speed_prompts": 2, "speed_new_tokens": 4, "device": "cpu"})
    log: list[str] = []
    rows, _, timings = evaluate_models(params, [build_offline_task("copy", "pl", corpus_tag=corpus)],
                                       log=log.append)
    assert [(r["task"], r["n_shot"]) for r in rows] == [("copy", 0)]  # 1-shot skipped, and said so
    assert rows[0]["prompt_style"] == "chat" and rows[0]["value"] == 0  # a random model copies nothing
    assert any("zero-shot only" in line for line in log)
    for column in SPEED_COLUMNS:
        assert rows[0][column] > 0 and math.isfinite(rows[0][column])
    (speed,) = timings["speed"]
    assert speed["model"] == "tiny-random" and speed["speed_prompts"] == 2 and speed["speed_new_tokens"] == 4
    with pytest.raises(ValueError, match="speed_prompts"):
        from lib.speed import speed_prompts

        speed_prompts("pl", corpus, 10_000)
