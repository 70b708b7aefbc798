"""Greedy generation in left-padded batches: plain-text prompts (benchmarks) and chat prompts
(instruction tuning, calibration, the copy task), one implementation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lib import progress


def generate_token_ids(model, tokenizer, encoded: Sequence[list[int]], *, max_new_tokens: int,
                       batch_size: int = 16, **generate_kwargs: Any) -> list[list[int]]:
    """Greedy continuations of pre-tokenised prompts as new token ids (padding after an early
    end included), in batches of ``batch_size`` consecutive prompts (their order is the
    caller's). ``generate_kwargs`` go to ``model.generate`` (``min_new_tokens``, ...)."""
    import torch

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = next(model.parameters()).device
    pad_id = pad_token_id(tokenizer)
    outputs: list[list[int]] = []
    model.eval()
    with torch.inference_mode():
        for first in progress.track(range(0, len(encoded), batch_size), "generating", unit="batch"):
            batch = encoded[first:first + batch_size]
            width = max(map(len, batch))
            # left padding: every prompt ends at the same position, where generation starts
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for b, seq in enumerate(batch):
                ids[b, width - len(seq):] = torch.tensor(seq)
                attention[b, width - len(seq):] = 1
            new = model.generate(input_ids=ids.to(device), attention_mask=attention.to(device),
                                 max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id,
                                 **generate_kwargs)
            outputs += new[:, width:].tolist()
    return outputs


def generate_ids(model, tokenizer, encoded: Sequence[list[int]], *, max_new_tokens: int,
                 batch_size: int = 16) -> list[str]:
    """Greedy continuations of pre-tokenised prompts, decoded without special tokens, in
    batches of ``batch_size`` consecutive prompts (their order is the caller's)."""
    new = generate_token_ids(model, tokenizer, encoded, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return [tokenizer.decode(row, skip_special_tokens=True) for row in new]


def pad_token_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def chat_prompt_ids(tokenizer, conversations: Sequence[list[dict[str, str]]]) -> list[list[int]]:
    """Token ids of chat prompts rendered with the tokenizer's chat template, ready for the
    assistant's answer (the template writes every special token it needs)."""
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    return [list(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]


def chat_generate(model, tokenizer, conversations: Sequence[list[dict[str, str]]], *, max_new_tokens: int,
                  batch_size: int = 16) -> list[str]:
    """Greedy answers to chat prompts, rendered with the tokenizer's chat template."""
    encoded = chat_prompt_ids(tokenizer, conversations)
    return [text.strip() for text in generate_ids(model, tokenizer, encoded, max_new_tokens=max_new_tokens,
                                                   batch_size=batch_size)]
