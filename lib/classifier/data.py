"""What the classifier reads: the items' texts, the (capped) train split, tokenised for the Trainer."""

from __future__ import annotations

from collections.abc import Sequence

from lib.tasks.base import Item, Task, TaskError

INPUTS = ("text", "prompt")  # the item's raw "text" field, or the benchmark's prompt query


def classifier_texts(task: Task, items: Sequence[Item], inputs: str = "text") -> list[str]:
    """What the classifier reads per item: the raw ``text`` field or the benchmark's prompt query."""
    if inputs not in INPUTS:
        raise TaskError(f"inputs must be one of {INPUTS}, got {inputs!r}")
    if inputs == "prompt":
        return [task.prompt.query(item) for item in items]
    missing = [item.id for item in items if "text" not in item.fields]
    if missing:
        raise TaskError(f"task {task.id}: {len(missing)} item(s), e.g. {missing[0]}, have no 'text' field; "
                        "use inputs='prompt' (the task's prompt query)")
    return [item.fields["text"] for item in items]


def token_dataset(tokenizer, texts: Sequence[str], labels: Sequence[int], max_length: int):
    """Token ids truncated to ``max_length``, unpadded: the collator pads each batch to its longest item."""
    from datasets import Dataset

    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    return Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                              "labels": [int(label) for label in labels]})
