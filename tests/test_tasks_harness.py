"""The lm-evaluation-harness bridge, on the tiny model and a local task (no network)."""

from __future__ import annotations

import json

import pytest

from lib.eval_lm import eval_lm_file
from lib.tasks import harness
from lib.tasks.scoring import ChoiceRequest, score_choices

TASK_YAML = """task: langadapt_toy
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: multiple_choice
test_split: test
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
"""


ROLLING_YAML = """task: langadapt_rolling
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: loglikelihood_rolling
test_split: test
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: bits_per_byte
  - metric: byte_perplexity
"""

# Two Polish paragraphs (multi-byte characters: bits per *byte*, not per character).
PARAGRAPHS = (
    "Litwo! Ojczyzno moja! ty jesteś jak zdrowie. Ile cię trzeba cenić, ten tylko się dowie, "
    "kto cię stracił. Dziś piękność twą w całej ozdobie widzę i opisuję, bo tęsknię po tobie.",
    "Panno Święta, co jasnej bronisz Częstochowy i w Ostrej świecisz Bramie! Ty, co gród zamkowy "
    "nowogródzki ochraniasz z jego wiernym ludem!",
)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No hub access: the tiny model and the task data are local files."""
    import datasets.config
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def lm(shared_cache):
    return harness.make_lm("tiny-random", device="cpu", batch_size=4)


def test_loglikelihood_matches_our_scorer(lm):
    """Same numbers once both condition on the same tokens: lm-eval encodes a context as is,
    our scorers put the document prefix token (<|endoftext|> for SmolLM2's tokenizer) first."""
    from lm_eval.api.instance import Instance

    context, options = "Pytanie: dwa plus dwa to", (" cztery", " pięć", " niebieski dom")
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=("<|endoftext|>" + context, o), idx=i)
                for i, o in enumerate(options)]
    theirs = [logprob for logprob, _ in lm.loglikelihood(requests)]
    (ours,) = score_choices(lm.model, lm.tokenizer, [ChoiceRequest(context, options)])
    assert [s.logprob for s in ours] == pytest.approx(theirs, abs=1e-3)


def test_simple_evaluate_on_a_local_task(tmp_path, shared_cache):
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps({"question": f"Question {i}: two plus two is",
                                        "choices": [" four", " five", " blue"], "label": 0}) + "\n"
                            for i in range(6)))
    (tmp_path / "toy.yaml").write_text(TASK_YAML.format(data=data))
    results = harness.evaluate("tiny-random", ["langadapt_toy"], include_path=str(tmp_path),
                               include_defaults=False, limit=4, bootstrap_iters=10, device="cpu")
    rows = harness.rows(results, "tiny-random")
    assert {r["metric"] for r in rows} == {"acc", "acc_norm"}
    assert all(r["task"] == "langadapt_toy" and r["n"] == 4 and 0 <= r["value"] <= 1 for r in rows)


def test_the_model_class_is_registered():
    from lm_eval.api.registry import get_model

    assert get_model(harness.MODEL_NAME) is harness.lm_class()


def test_rolling_bits_per_byte_matches_eval_lm(tmp_path, shared_cache):
    """A local perplexity task (``loglikelihood_rolling``) gives eval-lm's bits per byte.

    lm-eval cuts each document into disjoint windows of ``max_length`` tokens, the first one
    after the document prefix token, each later one seeing the ``max_length`` tokens before
    its last target: eval-lm's windows with ``stride == max_length``. Both then divide the
    summed negative log-likelihood, in bits, by the UTF-8 bytes of the documents. A small
    window (16 tokens, ~80 per paragraph) makes several windows per document, so the test
    covers the window boundaries; other windows move the number by ~2e-3, far beyond the
    tolerance (checked below, so a mismatch in windows or prefix cannot pass unnoticed).
    """
    text = tmp_path / "pl.txt"
    text.write_text("\n\n".join(PARAGRAPHS) + "\n", encoding="utf-8")
    data = tmp_path / "pl.jsonl"
    data.write_text("".join(json.dumps({"text": p}, ensure_ascii=False) + "\n" for p in PARAGRAPHS),
                    encoding="utf-8")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "rolling.yaml").write_text(ROLLING_YAML.format(data=data))

    results = harness.evaluate("tiny-random", ["langadapt_rolling"], include_path=str(tasks),
                               include_defaults=False, bootstrap_iters=0, device="cpu",
                               batch_size=4, max_length=16)
    rows = {r["metric"]: r for r in harness.rows(results, "tiny-random")}
    assert rows["bits_per_byte"]["n"] == len(PARAGRAPHS)
    theirs = rows["bits_per_byte"]["value"]
    assert rows["byte_perplexity"]["value"] == pytest.approx(2 ** theirs, rel=1e-9)

    ours = eval_lm_file("tiny-random", text, max_length=16, stride=16, split_docs="blank-lines",
                        device="cpu")
    assert ours["n_docs"] == len(PARAGRAPHS)
    assert ours["n_bytes"] == sum(len(p.encode("utf-8")) for p in PARAGRAPHS)
    assert ours["n_tokens"] > 8 * 16  # several windows per paragraph
    assert ours["bits_per_byte"] == pytest.approx(theirs, abs=1e-5)

    # The tolerance is tight enough to see a different windowing: eval-lm's overlapping
    # windows (stride half the window) give later tokens more context, and another number.
    overlapping = eval_lm_file("tiny-random", text, max_length=16, stride=8, split_docs="blank-lines",
                               device="cpu")
    assert abs(overlapping["bits_per_byte"] - theirs) > 1e-4
