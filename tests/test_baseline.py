from __future__ import annotations

import pytest

from lib import stages
from lib.corpus import load_corpus
from lib.corpus.select import select_indices, select_texts
from lib.lm_metrics import score_texts
from lib.models import load_model_and_tokenizer
from lib.params import build
from lib.stages import prepare_data
from lib.stages.baseline_eval import BaselineEvalParams, score_models


def test_selection_is_deterministic_mixed_and_bounded():
    texts = [f"doc {i} " * 10 for i in range(50)]
    ids = [f"src{i % 3}/{i}" for i in range(50)]
    first = select_indices(texts, ids, max_chars=300)
    assert first == select_indices(texts, ids, max_chars=300)
    assert first != list(range(len(first)))  # not simply the first documents on disk
    assert sum(len(texts[i]) for i in first[:-1]) < 300 <= sum(len(texts[i]) for i in first)
    assert len(select_texts(texts, ids, max_chars=0)) == 50  # 0 means everything
    with pytest.raises(ValueError, match="no documents"):
        select_indices([], [], 10)


@pytest.mark.slow
def test_per_source_rows_add_up_to_the_whole(isolated_home):
    # the tiny profile's corpus: the one the tiny sweeps build under this tag in the same home
    prepare_data.build(stages.resolve(prepare_data.STAGE, profile="tiny", overrides={"language": "pl"}))
    params = build(BaselineEvalParams, {"models": ["tiny-random"], "language": "pl", "corpus_tag": "tiny",
                                        "max_chars": 4000, "max_length": 128, "stride": 64})
    rows, timings = score_models(params, log=lambda *_: None)
    tokens = {r["source"]: r["n_tokens"] for r in rows if r["metric"] == "bits_per_char"}
    assert len(tokens) > 2 and tokens["all"] == sum(v for k, v in tokens.items() if k != "all")
    # the 'all' row equals scoring the whole selection at once
    test = load_corpus("pl", "tiny")["test"]
    texts = select_texts(test["text"], test["id"], 4000)
    model, tokenizer = load_model_and_tokenizer("tiny-random")
    whole = score_texts(model, tokenizer, texts, max_length=128, stride=64)
    bpc = next(r["value"] for r in rows if r["source"] == "all" and r["metric"] == "bits_per_char")
    assert bpc == pytest.approx(whole.bits_per_char, rel=1e-6)
    assert timings["tiny-random"]["tokens_per_second"] > 0
