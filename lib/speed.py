"""Generation speed in characters of text: the measure that compares an instruct model with
the same model after LEP (a new tokenizer) on the same prompts.

Tokens per second alone cannot compare models with different tokenizers: a tokenizer
that packs more characters into a token makes every generated token worth more text.
So ``generation_speed`` greedy-generates a fixed number of new tokens per prompt
(exactly that many: end-of-sequence and every other special token are suppressed, so
each token is text) and reports characters of generated text per second, tokens per
second and tokens per character of the generated text (the tokenizer's fertility on
what the model writes). A warm-up batch runs untimed first (kernel selection, caches);
the timed part is generation alone (``time.perf_counter`` around ``model.generate`` in
``torch.inference_mode``), decoding excluded.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

NEW_TOKENS = 128  # default new tokens per prompt: long enough that prefill is a small share
BATCH_SIZE = 8  # prompts per generate call
_WARMUP_TOKENS = 8


@dataclass(frozen=True)
class GenerationSpeed:
    prompts: int
    new_tokens: int  # per prompt
    batch_size: int
    seconds: float  # generation alone, warm-up excluded
    tokens: int  # generated tokens, all prompts
    chars: int  # characters of the decoded generated text, all prompts
    texts: tuple[str, ...]  # the generated text of each prompt

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    @property
    def chars_per_second(self) -> float:
        return self.chars / self.seconds

    @property
    def tokens_per_char(self) -> float:
        return self.tokens / self.chars

    def summary(self) -> dict[str, float | int]:
        return {"speed_prompts": self.prompts, "speed_new_tokens": self.new_tokens,
                "speed_seconds": round(self.seconds, 4), "tokens_per_second": self.tokens_per_second,
                "chars_per_second": self.chars_per_second, "tokens_per_char": self.tokens_per_char}


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def generation_speed(model, tokenizer, prompts: Sequence[str], *, new_tokens: int = NEW_TOKENS,
                     batch_size: int = BATCH_SIZE, warmup: bool = True) -> GenerationSpeed:
    """Greedy-generate exactly ``new_tokens`` tokens after each prompt (each a new document),
    ``batch_size`` prompts at a time, and time it (see the module doc)."""
    import torch

    from lib.generation import generate_token_ids
    from lib.lm_metrics import document_prefix_ids

    _check_positive_int("new_tokens", new_tokens)
    _check_positive_int("batch_size", batch_size)
    prompts = list(prompts)
    if not prompts or any(not p for p in prompts):
        raise ValueError("generation_speed needs a non-empty list of non-empty prompts")
    doc = document_prefix_ids(tokenizer)
    encoded = [doc + list(ids) for ids in tokenizer(prompts, add_special_tokens=False, verbose=False)["input_ids"]]
    special = sorted(set(tokenizer.all_special_ids))
    kwargs = {"min_new_tokens": new_tokens, "suppress_tokens": special} if special else \
        {"min_new_tokens": new_tokens}
    device = next(model.parameters()).device

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if warmup:
        generate_token_ids(model, tokenizer, encoded[:batch_size], max_new_tokens=min(_WARMUP_TOKENS, new_tokens),
                           batch_size=batch_size, min_new_tokens=min(_WARMUP_TOKENS, new_tokens))
    sync()
    start = time.perf_counter()
    new = generate_token_ids(model, tokenizer, encoded, max_new_tokens=new_tokens, batch_size=batch_size,
                             **kwargs)
    sync()
    seconds = time.perf_counter() - start
    short = [i for i, row in enumerate(new) if len(row) != new_tokens]
    if short:  # cannot happen with min_new_tokens; a model whose generate ignores it would mislead
        raise RuntimeError(f"prompt {short[0]} got {len(new[short[0]])} new tokens, not {new_tokens}")
    texts = tuple(tokenizer.decode(row, skip_special_tokens=True) for row in new)
    chars = sum(map(len, texts))
    if chars == 0:
        raise RuntimeError("the generated text has no characters: tokens per character is undefined")
    if not seconds > 0 or not math.isfinite(seconds):
        raise RuntimeError(f"timing failed: {seconds} s")
    return GenerationSpeed(len(prompts), new_tokens, batch_size, seconds, len(prompts) * new_tokens, chars, texts)


def speed_prompts(language: str, corpus_tag: str, n: int, *, seed: int = 0) -> list[str]:
    """``n`` paragraphs of the corpus test split (the copy task's), drawn by ``seed``: the
    fixed target-language prompts every compared model continues."""
    from lib.tasks.offline import copy_paragraphs

    _check_positive_int("n", n)
    rows = copy_paragraphs(language, corpus_tag, seed)
    if len(rows) < n:
        raise ValueError(f"the {language}/{corpus_tag} test split has {len(rows)} paragraphs for the speed "
                         f"measure, fewer than the {n} asked (speed_prompts)")
    return [text for _, _, text in random.Random(f"{seed}:speed").sample(rows, n)]
