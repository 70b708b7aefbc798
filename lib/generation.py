"""Greedy generation in left-padded batches: plain-text prompts (benchmarks) and chat prompts
(instruction tuning, calibration), one implementation."""

from __future__ import annotations

from collections.abc import Sequence


def generate_ids(model, tokenizer, encoded: Sequence[list[int]], *, max_new_tokens: int,
                 batch_size: int = 16) -> list[str]:
    """Greedy continuations of pre-tokenised prompts, decoded without special tokens, in
    batches of ``batch_size`` consecutive prompts (their order is the caller's)."""
    import torch

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    outputs: list[str] = []
    model.eval()
    with torch.inference_mode():
        for first in range(0, len(encoded), batch_size):
            batch = encoded[first:first + batch_size]
            width = max(map(len, batch))
            # left padding: every prompt ends at the same position, where generation starts
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for b, seq in enumerate(batch):
                ids[b, width - len(seq):] = torch.tensor(seq)
                attention[b, width - len(seq):] = 1
            new = model.generate(input_ids=ids.to(device), attention_mask=attention.to(device),
                                 max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id)
            outputs += [tokenizer.decode(row[width:], skip_special_tokens=True) for row in new]
    return outputs


def chat_generate(model, tokenizer, conversations: Sequence[list[dict[str, str]]], *, max_new_tokens: int,
                  batch_size: int = 16) -> list[str]:
    """Greedy answers to chat prompts, rendered with the tokenizer's chat template."""
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    return [text.strip() for text in generate_ids(model, tokenizer, encoded, max_new_tokens=max_new_tokens,
                                                   batch_size=batch_size)]
