"""How a tokenizer cuts a list of texts: length, new-token coverage, exact round trip.

Plain dicts; the stage turns them into tidy rows. Special tokens are never counted (texts are
encoded without them); words are whitespace-separated, as in ``lib.lm_metrics.fertility``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def new_token_ids(tokenizer, old_tokenizer) -> set[int]:
    """Ids of ``tokenizer`` whose token string is not in ``old_tokenizer``'s vocabulary (added ones too)."""
    old = old_tokenizer.get_vocab()
    return {i for token, i in tokenizer.get_vocab().items() if token not in old}


def tokenizer_measures(tokenizer, texts: Sequence[str], old_tokenizer=None) -> dict[str, Any]:
    """Characters per token, tokens per word, round-trip rate and (given the old tokenizer) the
    share of characters that new tokens cover.

    ``round_trip_rate``: the share of texts with ``decode(encode(text)) == text`` exactly.
    ``new_token_char_share``: characters inside the offsets of new tokens over all characters
    (None without ``old_tokenizer``); ``new_token_share``: the same over tokens.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of documents, not one string")
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("no texts to measure: the list is empty or holds only empty strings")
    new_ids = new_token_ids(tokenizer, old_tokenizer) if old_tokenizer is not None else None
    encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    n_tokens = n_new_tokens = n_new_chars = n_round_trip = 0
    for text, enc in zip(texts, encodings, strict=True):
        n_tokens += len(enc.ids)
        decoded = tokenizer.decode(enc.ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        n_round_trip += decoded == text
        if new_ids is not None:
            covered = bytearray(len(text))
            for token_id, (start, end) in zip(enc.ids, enc.offsets, strict=True):
                if token_id in new_ids:
                    n_new_tokens += 1
                    covered[start:end] = b"\x01" * (end - start)
            n_new_chars += sum(covered)
    n_chars = sum(len(t) for t in texts)
    n_words = sum(len(t.split()) for t in texts)
    return dict(
        chars_per_token=n_chars / n_tokens if n_tokens else None,
        tokens_per_word=n_tokens / n_words if n_words else None,
        new_token_char_share=n_new_chars / n_chars if new_ids is not None else None,
        new_token_share=n_new_tokens / n_tokens if new_ids is not None and n_tokens else None,
        round_trip_rate=n_round_trip / len(texts),
        n_texts=len(texts), n_chars=n_chars, n_words=n_words, n_tokens=n_tokens,
        vocab_size=len(tokenizer),
    )
