"""The copy task's scoring rule and generation (the LEP paper's DaruCopy).

The model is asked to repeat a paragraph verbatim (the items: ``lib.tasks.offline``,
family ``copy``). An answer counts as a copy when the characters of the longest
matching blocks between it and the paragraph (``difflib.SequenceMatcher``) cover at
least ``MIN_MATCHED`` of the answer (almost nothing added or changed) and the answer
is at least ``MIN_LENGTH`` of the paragraph long (almost nothing left out).

The prompt (the task's instruction and the paragraph) goes through the model's chat
template when its tokenizer has one (an instruct model, the one LEP propagates into);
a model without one gets it as a plain prompt followed by an answer cue ("Repeated
text:"), and its answer is cut at its first newline (paragraphs are single lines).
Which of the two ran is returned, and the evaluation rows record it (``prompt_style``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from difflib import SequenceMatcher

MIN_MATCHED = 0.99  # share of the answer's characters inside matching blocks
MIN_LENGTH = 0.9  # answer length over paragraph length
# Generation budget per item: the paragraph's own token count times a margin plus a few tokens.
# A verbatim copy can take a few more tokens than the paragraph tokenised alone (merges at the
# start, a closing quote), and the room after it lets text appended to the copy (a chat model's
# "Hope this helps!") show up, which the rule must see to score 0.
TOKEN_MARGIN = 1.2
EXTRA_TOKENS = 16
PROMPT_STYLES = ("chat", "plain")


def copy_score(prediction: str, paragraph: str) -> int:
    """1 when ``prediction`` is a copy of ``paragraph`` under the rule above, else 0."""
    if not prediction or not paragraph:
        return 0
    blocks = SequenceMatcher(None, prediction, paragraph).get_matching_blocks()
    matched = sum(block.size for block in blocks)
    return int(matched >= MIN_MATCHED * len(prediction) and len(prediction) >= MIN_LENGTH * len(paragraph))


def new_token_budget(paragraph_tokens: int) -> int:
    return math.ceil(paragraph_tokens * TOKEN_MARGIN) + EXTRA_TOKENS


def prompt_style(tokenizer) -> str:
    from lib.generation import has_chat_template

    return "chat" if has_chat_template(tokenizer) else "plain"


def encode_prompts(tokenizer, queries: Sequence[str], cue: str = "") -> tuple[list[list[int]], str]:
    """Token ids of each query as the model sees it, and the prompt style used: one user turn
    of the chat template, or a plain document of the query and ``cue``."""
    from lib.generation import chat_prompt_ids
    from lib.lm_metrics import document_prefix_ids

    style = prompt_style(tokenizer)
    if style == "chat":
        return chat_prompt_ids(tokenizer, [[{"role": "user", "content": q}] for q in queries]), style
    doc = document_prefix_ids(tokenizer)
    ids = tokenizer([q + cue for q in queries], add_special_tokens=False, verbose=False)["input_ids"]
    return [doc + list(row) for row in ids], style


def copy_outputs(model, tokenizer, queries: Sequence[str], paragraphs: Sequence[str], *, cue: str = "",
                 max_batch_tokens: int = 4096) -> tuple[list[str], str]:
    """Greedy answers to the copy prompts, and the prompt style (``chat`` or ``plain``, which
    appends ``cue`` to each query).

    Prompts are sorted by length and batched at about ``max_batch_tokens`` tokens
    (prompt plus budget, times the batch size); each batch generates up to the largest
    budget of its paragraphs (``new_token_budget``)."""
    from lib.generation import generate_ids

    if len(queries) != len(paragraphs):
        raise ValueError(f"{len(queries)} queries but {len(paragraphs)} paragraphs")
    encoded, style = encode_prompts(tokenizer, queries, cue)
    lengths = [len(ids) for ids in tokenizer(list(paragraphs), add_special_tokens=False,
                                             verbose=False)["input_ids"]]
    budgets = [new_token_budget(n) for n in lengths]
    order = sorted(range(len(queries)), key=lambda i: (len(encoded[i]) + budgets[i], i), reverse=True)
    outputs = [""] * len(queries)
    for batch in _batches(order, [len(e) + b for e, b in zip(encoded, budgets)], max_batch_tokens):
        texts = generate_ids(model, tokenizer, [encoded[i] for i in batch],
                             max_new_tokens=max(budgets[i] for i in batch), batch_size=len(batch))
        for i, text in zip(batch, texts):
            outputs[i] = text.strip() if style == "chat" else text.split("\n", 1)[0].strip()
    return outputs, style


def _batches(order: list[int], sizes: list[int], max_batch_tokens: int):
    """Consecutive runs of ``order`` (longest first) whose count times longest size stays
    within ``max_batch_tokens``; a single longer item is a batch of its own."""
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) + 1) * sizes[batch[0]] > max_batch_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch
