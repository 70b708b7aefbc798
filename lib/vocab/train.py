"""Train a BPE or Unigram model on texts, in the old tokenizer's kind (byte-level or SentencePiece-style).

The trainer sees the text exactly as the old tokenizer would (its normaliser and pre-tokeniser),
so the new pieces fit into the old pipeline. SentencePiece-style pipelines do not split words
(``▁`` is just a character to them); training adds a split before every ``▁``, as SentencePiece
itself trains word by word.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from lib.vocab.backend import BYTE_TOKENS, METASPACE, VocabError, from_json, tokenizer_kind

MODELS = ("bpe", "unigram")
_MIN_LEARNED = 0.9  # a trainer that learns fewer than this share of the asked tokens had too little text


def check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise VocabError("texts must be a list of documents, not one string")
    texts = [t for t in texts if t]
    if not texts:
        raise VocabError("no text to train a tokenizer on: the list of documents is empty")
    return texts


def trainer_pipeline(spec: dict[str, Any], kind: str) -> dict[str, Any]:
    """The old normaliser and pre-tokeniser around an empty model (SentencePiece kind: split at ▁)."""
    pre = spec.get("pre_tokenizer")
    if kind == "sentencepiece":
        split = {"type": "Split", "pattern": {"String": METASPACE}, "behavior": "MergedWithNext", "invert": False}
        pre = {"type": "Sequence", "pretokenizers": ([pre] if pre else []) + [split]}
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
            "normalizer": spec.get("normalizer"), "pre_tokenizer": pre, "post_processor": None,
            "decoder": spec.get("decoder"), "model": {"type": "BPE", "vocab": {}, "merges": []}}


def train_model(spec: dict[str, Any], texts: Sequence[str], *, model: str, vocab_size: int,
                special_tokens: Sequence[str] = (), min_frequency: int = 2,
                max_piece_length: int = 16) -> dict[str, Any]:
    """Train a ``model`` ("bpe" or "unigram") of ``vocab_size`` tokens (special tokens included).

    Returns the trained model's JSON (``{"type": "BPE", "vocab": ..., "merges": ...}`` or a
    Unigram ``vocab`` list). Byte-level: the 256 byte symbols are always in the alphabet.
    """
    from tokenizers import pre_tokenizers, trainers

    if model not in MODELS:
        raise VocabError(f"unknown tokenizer model {model!r}; choose one of {MODELS}")
    kind = tokenizer_kind(spec)
    texts = check_texts(texts)
    alphabet = pre_tokenizers.ByteLevel.alphabet() if kind == "byte_level" else []
    if model == "bpe":
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                      special_tokens=list(special_tokens), initial_alphabet=alphabet)
    else:
        # byte-level pieces spell a Cyrillic letter with two symbols: allow pieces twice as long
        length = max_piece_length * (2 if kind == "byte_level" else 1)
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, show_progress=False,
                                          special_tokens=list(special_tokens), initial_alphabet=alphabet,
                                          max_piece_length=length)
    pipeline = trainer_pipeline(spec, kind)
    if model == "unigram":
        pipeline["model"] = {"type": "Unigram", "unk_id": None, "vocab": [], "byte_fallback": False}
    tokenizer = from_json(pipeline)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    trained = json.loads(tokenizer.to_str())["model"]
    learned = len(trained["vocab"])
    if learned < _MIN_LEARNED * vocab_size:
        n_chars = sum(len(t) for t in texts)
        raise VocabError(
            f"corpus too small for a {vocab_size}-token {model} vocabulary: the trainer learned only {learned} "
            f"tokens from {len(texts)} texts ({n_chars:,} characters); lower vocab_size or give more text"
        )
    return trained


def with_bytes(trained: dict[str, Any], specials: Sequence[str]) -> dict[str, Any]:
    """A SentencePiece-style model: specials first, then the 256 ``<0x..>`` byte tokens, then the rest.

    Llama's layout; byte fallback needs the byte tokens in the vocabulary. Unigram scores of
    the byte tokens are far below every piece, so they are only used as the fallback.
    """
    if trained["type"] == "BPE":
        order = sorted(trained["vocab"], key=trained["vocab"].get)
        rest = [t for t in order if t not in specials and t not in BYTE_TOKENS]
        vocab = {t: i for i, t in enumerate([*specials, *BYTE_TOKENS, *rest])}
        return {**trained, "vocab": vocab, "byte_fallback": True, "fuse_unk": True}
    pieces = {p: s for p, s in trained["vocab"]}
    floor = min(pieces.values(), default=0.0) - 10.0
    rest = [[p, s] for p, s in trained["vocab"] if p not in specials and p not in BYTE_TOKENS]
    vocab = [[t, 0.0] for t in specials] + [[b, floor] for b in BYTE_TOKENS] + rest
    return {**trained, "vocab": vocab, "byte_fallback": True}
