"""Tasks: items in train/validation/test splits, a prompt format, a scoring rule.

A ``Task`` is data only; ``lib.tasks.evaluate_models`` runs models on it.

Kinds (the scoring rule):

- ``multiple_choice``: every item has its own options; the model's answer is
  the option with the highest log-likelihood (``acc``) or the highest
  log-likelihood per character of the option (``acc_norm``, as in
  lm-evaluation-harness: longer options are not penalised for their length).
- ``classification``: the options are the task's class names, the same for
  every item; ``acc`` and macro-averaged F1 (classes are often imbalanced).
- ``generation``: greedy decoding until a newline; exact match and chrF.
- ``copy``: repeat the item's paragraph verbatim, zero-shot only, in the model's chat
  template when it has one; ``copy_rate`` (``lib.tasks.copy_task``).

Few-shot examples come from the task's ``fewshot_split`` (``train``) only,
drawn by a fixed seed. ``shared`` sampling (the default) draws one set of k
examples per task and seed and puts it before every test item, as HELM does:
every model sees the same prompts, and the examples' key/value cache is
computed once per task (``lib.tasks.scoring``). ``per_item`` sampling draws a
fresh set for every item, seeded by the item id, as lm-evaluation-harness does.
A task whose few-shot split is its test split (Belebele ships only a test
split) always samples per item and never shows an item its own answer.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

KINDS = ("multiple_choice", "classification", "generation", "copy")
GENERATIVE_KINDS = ("generation", "copy")  # items carry a target text, no options
ZERO_SHOT_KINDS = ("copy",)  # no few-shot examples: the task shows no train text at all
SAMPLING = ("shared", "per_item")


CAP_SEED = 0  # which items fall under an evaluation cap; independent of the few-shot seed


class TaskError(ValueError):
    """A task cannot be built or run as asked; the message says why."""


@dataclass(frozen=True)
class Item:
    id: str
    fields: Mapping[str, str]  # what the prompt template formats
    label: int = -1  # index of the right option (multiple choice, classification)
    choices: tuple[str, ...] = ()  # multiple choice: this item's options
    target: str = ""  # generation: the reference answer
    group: str = ""  # the corpus split key this item came from (empty for hub data)


@dataclass(frozen=True)
class PromptFormat:
    """``template`` renders an item's query; an answer follows after ``answer_prefix``.

    A k-shot prompt is ``instruction``, then k solved examples, then the query,
    separated by ``separator``.
    """

    template: str
    answer_prefix: str = " "
    separator: str = "\n\n"
    instruction: str = ""

    def query(self, item: Item) -> str:
        try:
            return self.template.format(**item.fields)
        except KeyError as exc:
            raise TaskError(f"item {item.id} has no field {exc} needed by the prompt "
                            f"{self.template!r}") from None

    def answer(self, text: str) -> str:
        return self.answer_prefix + text

    def prefix(self, shots: Sequence[tuple[Item, str]]) -> str:
        """Everything before the query: the instruction and the solved examples."""
        parts = [self.instruction] if self.instruction else []
        parts += [self.query(item) + self.answer(answer) for item, answer in shots]
        return "".join(part + self.separator for part in parts)


@dataclass
class Task:
    name: str  # the task family, e.g. "topic_classification"
    language: str
    kind: str
    prompt: PromptFormat
    splits: dict[str, list[Item]]
    classes: tuple[str, ...] = ()  # classification: the class names, in label order
    description: str = ""
    source: str = ""  # where the items come from
    eval_split: str = "test"
    fewshot_split: str = "train"
    max_new_tokens: int = 16  # generation only
    n_available: int = 0  # items of eval_split before any cap (filled in by __post_init__)
    notes: dict[str, int | str] = field(default_factory=dict)  # build statistics

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TaskError(f"task {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.eval_split not in self.splits:
            raise TaskError(f"task {self.id} has no {self.eval_split!r} split "
                            f"(splits: {sorted(self.splits)})")
        if self.kind == "classification" and len(self.classes) < 2:
            raise TaskError(f"classification task {self.id} needs at least two classes")
        for item in self.splits[self.eval_split]:
            n = len(self.options(item))
            if self.kind not in GENERATIVE_KINDS and not 0 <= item.label < n:
                raise TaskError(f"item {item.id} of {self.id}: label {item.label} outside its "
                                f"{n} options")
        self.n_available = len(self.splits[self.eval_split])

    @property
    def id(self) -> str:
        return f"{self.name}:{self.language}"

    def options(self, item: Item) -> tuple[str, ...]:
        return self.classes if self.kind == "classification" else item.choices

    def answer_text(self, item: Item) -> str:
        return item.target if self.kind in GENERATIVE_KINDS else self.options(item)[item.label]

    def eval_items(self, max_items: int = 0, seed: int = CAP_SEED) -> list[Item]:
        """The evaluated items: all, or a fixed subset of ``max_items`` chosen by hash."""
        items = self.splits[self.eval_split]
        if max_items and len(items) > max_items:
            keep = set(sorted((i.id for i in items), key=lambda x: _hash(seed, x))[:max_items])
            items = [i for i in items if i.id in keep]
        return list(items)

    def train_items(self, max_items: int = 0, seed: int = 1234) -> list[Item]:
        """The train split, or a fixed random subset of ``max_items`` of it (0 = all): the items
        every tuning route (task SFT, classification head) of the same seed trains on."""
        items = sorted(self.splits.get("train") or [], key=lambda i: i.id)
        if not items:
            raise TaskError(f"task {self.id} has no train items to tune on")
        if max_items and len(items) > max_items:
            items = random.Random(f"{seed}:{self.id}:train").sample(items, max_items)
        return items

    def fewshot_pool(self) -> list[Item]:
        pool = self.splits.get(self.fewshot_split) or []
        return sorted(pool, key=lambda i: i.id)

    def prompts(self, items: Sequence[Item], n_shot: int, *, seed: int = 1234,
                sampling: str = "shared") -> list[tuple[str, str]]:
        """(prefix, query) per item: the prefix holds the k solved examples."""
        if sampling not in SAMPLING:
            raise TaskError(f"fewshot sampling must be one of {SAMPLING}, got {sampling!r}")
        if n_shot < 0:
            raise TaskError(f"n_shot must be >= 0, got {n_shot}")
        if n_shot and self.kind in ZERO_SHOT_KINDS:
            raise TaskError(f"task {self.id} is zero-shot only (kind {self.kind!r}), got n_shot={n_shot}")
        if n_shot == 0:
            prefix = self.prompt.prefix([])
            return [(prefix, self.prompt.query(item)) for item in items]
        pool = self.fewshot_pool()
        same_split = self.fewshot_split == self.eval_split
        needed = n_shot + (1 if same_split else 0)
        if len(pool) < needed:
            raise TaskError(f"task {self.id}: {n_shot}-shot needs {needed} items in its "
                            f"{self.fewshot_split!r} split, which has {len(pool)}")
        out = []
        shared = None
        if sampling == "shared" and not same_split:
            rng = random.Random(f"{seed}:{self.id}:{n_shot}")
            shared = self.prompt.prefix([(s, self.answer_text(s)) for s in rng.sample(pool, n_shot)])
        for item in items:
            if shared is not None:
                out.append((shared, self.prompt.query(item)))
                continue
            rng = random.Random(f"{seed}:{self.id}:{n_shot}:{item.id}")
            candidates = [s for s in pool if s.id != item.id] if same_split else pool
            shots = rng.sample(candidates, n_shot)
            out.append((self.prompt.prefix([(s, self.answer_text(s)) for s in shots]),
                        self.prompt.query(item)))
        return out


def _hash(seed: int, key: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()


def shuffled_labels(task: Task, seed: int = 0) -> Task:
    """A copy of ``task`` whose evaluated items carry random labels (a sanity check:
    any model must score at chance on it)."""
    rng = random.Random(seed)
    items = []
    for item in task.splits[task.eval_split]:
        n = len(task.options(item))
        items.append(Item(item.id, item.fields, rng.randrange(n), item.choices, item.target, item.group))
    splits = dict(task.splits) | {task.eval_split: items}
    return Task(task.name + "_shuffled", task.language, task.kind, task.prompt, splits, task.classes,
                task.description, task.source, task.eval_split, task.fewshot_split, task.max_new_tokens)
