"""The papers' tokenizers: conversion code on tiny in-test models (fast); the real packages (slow, download)."""

from __future__ import annotations

import pytest

from lib.vocab import (
    VocabError,
    build_tokenizer,
    known_paper_tokenizers,
    paper_tokenizer,
    require_model,
    source_tokenizer,
    tokenizer_kind,
)
from lib.vocab.backend import backend_json
from lib.vocab.paper_tokenizers import llama3_special_tokens, read_tiktoken_ranks
from tests.test_vocab_fixtures import ROUND_TRIP, old_tokenizer, target_texts


def test_sentencepiece_conversion_encodes_like_sentencepiece(tmp_path):
    import sentencepiece as spm

    from tests.test_vocab_fixtures import sentencepiece_tokenizer

    tok = sentencepiece_tokenizer(tmp_path)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    for text in ROUND_TRIP:
        assert tok(text, add_special_tokens=False)["input_ids"] == sp.encode(text)
        assert tok(text)["input_ids"][0] == tok.bos_token_id == sp.bos_id()
    assert tokenizer_kind(backend_json(tok)) == "sentencepiece"


def test_tiktoken_conversion_puts_specials_after_the_ranks():
    tok = old_tokenizer("tiktoken")
    n = tok.vocab_size
    assert tok.convert_tokens_to_ids(["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]) == [n, n + 1, n + 2]
    assert tok("hi")["input_ids"][0] == tok.bos_token_id == n
    for text in ROUND_TRIP:
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tokenizer_kind(backend_json(tok)) == "byte_level"
    new = build_tokenizer(tok, target_texts(), "extension", vocab_size=600)
    assert new.convert_tokens_to_ids("<|eot_id|>") == n + 2 and len(new) > len(tok)


def test_llama3_special_token_list():
    specials = llama3_special_tokens()
    assert len(specials) == 256 and min(specials.values()) == 128000 and max(specials.values()) == 128255
    assert specials["<|eot_id|>"] == 128009 and specials["<|reserved_special_token_250|>"] == 128255


def test_rank_file_reader(tmp_path):
    path = tmp_path / "r.tiktoken"
    path.write_bytes(b"YQ== 0\nYg== 1\n\nYWI= 2\n")
    assert read_tiktoken_ranks(path) == {b"a": 0, b"b": 1, b"ab": 2}


def test_a_tokenizer_only_entry_is_not_a_model():
    with pytest.raises(VocabError, match="'llama-3' is a tokenizer-only entry.*never a model"):
        require_model("llama-3")
    require_model("smollm2-135m-instruct")


def test_unknown_paper_tokenizer():
    with pytest.raises(VocabError, match="unknown paper tokenizer 'gpt-5'.*llama-3"):
        paper_tokenizer("gpt-5")
    assert known_paper_tokenizers() == ["llama-3", "mistral-7b-v0.1"]


@pytest.mark.slow
def test_real_paper_tokenizers_from_pypi():
    """Downloads mistral-common and llama-models once (about 10 MB), converts, caches."""
    import sentencepiece as spm

    from lib.packages import pypi_package
    from lib.vocab.paper_tokenizers import PAPER_TOKENIZERS

    mistral = paper_tokenizer("mistral-7b-v0.1")
    assert len(mistral) == 32000 and mistral.convert_tokens_to_ids(["<unk>", "<s>", "</s>"]) == [0, 1, 2]
    entry = PAPER_TOKENIZERS["mistral-7b-v0.1"]
    sp = spm.SentencePieceProcessor(model_file=str(pypi_package(*entry.package) / entry.member))
    llama = source_tokenizer("llama-3")
    assert len(llama) == 128256 and llama.bos_token_id == 128000 and llama.eos_token_id == 128001
    for text in ROUND_TRIP:
        assert mistral(text, add_special_tokens=False)["input_ids"] == sp.encode(text)
        for tok in (mistral, llama):
            ids = tok(text)["input_ids"]
            assert ids[0] == tok.bos_token_id
            assert tok.decode(ids, skip_special_tokens=True) == text
    # Russian is far shorter in tokens with LLaMa-3 than with Mistral (LEP's table: 2.89 vs 2.44 chars/token)
    text = "Программа выводит таблицу значений и сохраняет результат в файле."
    assert len(llama(text)["input_ids"]) < len(mistral(text)["input_ids"])
