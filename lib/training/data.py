"""Corpus documents -> token sequences for packed causal-LM training.

Each document is encoded on its own with the separator the model was pretrained
with, and the packer (TRL's ``wrapped`` strategy) concatenates the sequences and
cuts the stream into fixed blocks: no padding, no token thrown away.

The separator is the one ``lib.lm_metrics`` conditions every scored document
on, so training and evaluation see documents the same way:

- a tokenizer that adds BOS by itself (Llama, Mistral, Gemma): ``BOS doc EOS``;
- one that adds nothing (GPT-2 style, SmolLM2): ``<|endoftext|> doc``, so the
  stream is documents joined by the end-of-text token. SmolLM2-Instruct's
  ``eos_token`` is ``<|im_end|>``, a chat end-of-turn marker, which is why the
  tokenizer's eos_token is not blindly used here.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.corpus.select import select_texts
from lib.lm_metrics import document_prefix_ids
from lib.training import TrainingSetupError


def adds_bos(tokenizer) -> bool:
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    return (tokenizer.bos_token_id is not None and len(with_special) > len(without)
            and with_special[0] == tokenizer.bos_token_id)


def document_token_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """Each document as the token sequence the packer joins (see the module docstring)."""
    prefix = document_prefix_ids(tokenizer)
    suffix = [tokenizer.eos_token_id] if adds_bos(tokenizer) and tokenizer.eos_token_id is not None else []
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    return [prefix + list(ids) + suffix for ids in encoded]


@dataclass(frozen=True)
class TokenStats:
    n_docs: int
    n_tokens: int  # including separators: what training sees
    n_chars: int


def training_sequences(tokenizer, texts: list[str], ids: list[str], *, max_tokens: int = 0,
                       max_chars: int = 0, seed: int = 0) -> tuple[list[list[int]], TokenStats]:
    """Documents in a deterministic source-mixed order, cut after ``max_tokens`` tokens or
    ``max_chars`` characters, whichever comes first (0 = no limit). A budget in characters
    gives two tokenizers the same text: a better tokenizer packs more text into a token."""
    ordered = select_texts(texts, ids, 0, seed=seed)
    sequences = document_token_ids(tokenizer, ordered)
    kept, total, chars = [], 0, 0
    for text, seq in zip(ordered, sequences):
        if (max_tokens and total >= max_tokens) or (max_chars and chars >= max_chars):
            break
        kept.append(seq)
        total += len(seq)
        chars += len(text)
    return kept, TokenStats(n_docs=len(kept), n_tokens=total, n_chars=chars)


def token_dataset(sequences: list[list[int]]):
    """A ``datasets.Dataset`` with an ``input_ids`` column: SFTTrainer then skips its own
    tokenisation (and its EOS appending) and goes straight to labels and packing."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": sequences})


def check_enough_tokens(stats: TokenStats, block_size: int, what: str) -> None:
    if stats.n_tokens < block_size:
        raise TrainingSetupError(
            f"{what} has only {stats.n_tokens} tokens, fewer than one block of {block_size}: "
            f"nothing to train on (raise max_train_tokens / max_train_chars or lower block_size)")
