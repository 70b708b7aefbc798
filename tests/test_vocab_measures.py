"""Tokenizer measures: characters per token, tokens per word, new-token coverage, exact round trip."""

from __future__ import annotations

import json

import pytest

from lib.lm_metrics import fertility
from lib.vocab import build_tokenizer, new_token_ids, tokenizer_measures
from lib.vocab.backend import backend_json, from_json
from tests.test_vocab_fixtures import ROUND_TRIP, RU, corpus, old_tokenizer, target_texts


def test_measures_of_the_old_tokenizer_against_itself():
    old = old_tokenizer("byte_level")
    texts = ROUND_TRIP + corpus(RU, 5)
    m = tokenizer_measures(old, texts, old)
    f = fertility(old, texts)
    assert m["chars_per_token"] == pytest.approx(f["chars_per_token"])
    assert m["tokens_per_word"] == pytest.approx(f["tokens_per_word"])
    assert m["new_token_char_share"] == 0 and m["new_token_share"] == 0 and m["round_trip_rate"] == 1
    assert m["n_texts"] == len(texts) and m["vocab_size"] == len(old)
    assert tokenizer_measures(old, texts)["new_token_char_share"] is None


@pytest.mark.parametrize("kind", ["byte_level", "sentencepiece"])
def test_new_token_coverage_after_extension(kind):
    old = old_tokenizer(kind)
    new = build_tokenizer(old, target_texts(), "extension", vocab_size=600)
    assert new_token_ids(new, old) == set(range(len(old), len(new)))
    russian = tokenizer_measures(new, corpus(RU, 10, seed=5), old)
    assert 0.5 < russian["new_token_char_share"] <= 1 and 0 < russian["new_token_share"] <= 1
    english = tokenizer_measures(new, ["plain ascii words only"], old)
    assert english["new_token_char_share"] < russian["new_token_char_share"]


def test_round_trip_rate_counts_lossy_texts():
    old = old_tokenizer("byte_level")
    spec = backend_json(old)
    spec["normalizer"] = {"type": "Lowercase"}
    from transformers import PreTrainedTokenizerFast

    lossy = PreTrainedTokenizerFast(tokenizer_object=from_json(spec))
    m = tokenizer_measures(lossy, ["all lower case", "Has Capitals", "again lower"])
    assert m["round_trip_rate"] == pytest.approx(2 / 3)


def test_bad_texts():
    old = old_tokenizer("byte_level")
    with pytest.raises(TypeError, match="list of documents"):
        tokenizer_measures(old, "one string")
    with pytest.raises(ValueError, match="empty"):
        tokenizer_measures(old, ["", ""])
    assert json.dumps(tokenizer_measures(old, ["ok"]))  # plain values only
