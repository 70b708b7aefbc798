"""A resized model saved as a standalone checkpoint reloads with identical logits and bits per character."""

from __future__ import annotations

import json

import pytest
import torch

from lib.lm_metrics import score_texts
from lib.vocab import VocabError, adapt_model, build_tokenizer, load_provenance, save_checkpoint, save_tokenizer
from tests.test_vocab_fixtures import ROUND_TRIP, english_texts, old_tokenizer, target_texts, tiny_model


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("kind,strategy", [("byte_level", "extension"), ("sentencepiece", "bpe"),
                                           ("sentencepiece", "add_tokens")])
def test_saved_checkpoint_reloads_with_identical_scores(tmp_path, kind, strategy, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    old = old_tokenizer(kind)
    params = {"n_tokens": 20, "vocab_size": 500} if strategy == "add_tokens" else {"vocab_size": 500}
    new = build_tokenizer(old, target_texts(), strategy, english_texts=english_texts(), **params)
    model = adapt_model(tiny_model(old, tied=tied), old, new, init="mean")
    out = save_checkpoint(model, new, tmp_path / "run" / "model", {"strategy": strategy, "init": "mean"})
    assert out == (tmp_path / "run" / "model").resolve()
    assert load_provenance(out) == {"strategy": strategy, "init": "mean", "vocab_size": len(new)}
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]  # no temporary left

    again = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert len(tok) == len(new) and tok.chat_template == new.chat_template
    assert (again.get_input_embeddings().weight is again.get_output_embeddings().weight) == tied
    assert json.loads((out / "config.json").read_text())["vocab_size"] == len(new)
    texts = ROUND_TRIP[:5] + target_texts()[:3]
    args = dict(max_length=64, stride=32, batch_size=4)
    assert score_texts(again, tok, texts, **args) == score_texts(model, new, texts, **args)
    ids = torch.tensor([new(texts[1])["input_ids"]])
    with torch.no_grad():
        assert torch.equal(again(ids).logits, model(ids).logits)


def test_save_refuses_a_model_that_does_not_fit_the_tokenizer(tmp_path):
    old = old_tokenizer("byte_level")
    new = build_tokenizer(old, target_texts(), "extension", vocab_size=600)
    with pytest.raises(VocabError, match="run adapt_model"):
        save_checkpoint(tiny_model(old), new, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_save_tokenizer_alone_replaces_an_old_directory(tmp_path):
    old = old_tokenizer("byte_level")
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "stale.txt").write_text("old")
    out = save_tokenizer(old, tmp_path / "tok", {"source": "fixture"})
    assert not (out / "stale.txt").exists() and (out / "tokenizer.json").is_file()
    assert load_provenance(out)["source"] == "fixture"
