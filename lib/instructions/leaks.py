"""The text leak filter: no instruction example may contain a benchmark item's text.

Packaged examples already come from corpus-train groups only, but the same
sentence recurs across help files, synsets and contexts, and hub sets know
nothing about our splits. So every example whose prompt or completion
(normalised: NFC, whitespace collapsed) contains the text of a held-out item
(validation or test) of an offline task of the language is dropped: the
item's fields and its correct answer.

Two kinds of text are not held-out text and are not searched for:

- strings shorter than ``MIN_CHARS`` (a headword, a class name): finding
  "kalem" or "Writer" inside an example says nothing about an item;
- answers that the task also gives to a train item (class names, the sense
  definitions of rl-wsd-labeled words): they are labels, shared by design.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from lib.instructions.records import Example, completion_text, normalise, prompt_text

MIN_CHARS = 15
HELD_OUT_SPLITS = ("validation", "test")
_ANCHOR = 6  # characters next to a space of a needle that index it


@dataclass
class LeakFilter:
    """Finds any of a set of needles inside a text without trying each needle on each text.

    A needle that occurs in a text, even starting mid-word, has each of its spaces
    at a space of the text; so the ``_ANCHOR`` characters right after (or right
    before) any space of the needle are found right after (before) some space
    of the text. Each needle is indexed under its rarest such string, and only
    the needles indexed under the strings around the text's spaces are tested
    with ``in``. A needle without a space lies inside one word of the text: it is
    indexed under its first characters and looked up inside the text's long words.
    """

    needles: frozenset[str] = frozenset()
    tasks: list[str] = field(default_factory=list)  # offline tasks whose held-out items were read
    skipped: dict[str, str] = field(default_factory=dict)  # tasks that could not be built: why

    def __post_init__(self) -> None:
        self._after: dict[str, list[str]] = defaultdict(list)
        self._before: dict[str, list[str]] = defaultdict(list)
        self._in_word: dict[str, list[str]] = defaultdict(list)
        anchors = {needle: _anchors(needle) for needle in sorted(self.needles)}
        frequency = Counter(a for found in anchors.values() for a in set(found))
        for needle, found in anchors.items():
            if found:
                side, anchor = min(found, key=lambda a: frequency[a])
                (self._after if side == "after" else self._before)[anchor].append(needle)
            else:  # no space (a needle is at least MIN_CHARS >= _ANCHOR long)
                self._in_word[needle[:_ANCHOR]].append(needle)

    def contains(self, text: str) -> bool:
        """Whether normalised ``text`` contains a needle."""
        space = text.find(" ")
        while space >= 0:
            for needle in (*self._after.get(text[space + 1 : space + 1 + _ANCHOR], ()),
                           *self._before.get(text[max(0, space - _ANCHOR) : space], ())):
                if needle in text:
                    return True
            space = text.find(" ", space + 1)
        if self._in_word:
            for word in text.split(" "):
                for start in range(len(word) - MIN_CHARS + 1):
                    for needle in self._in_word.get(word[start : start + _ANCHOR], ()):
                        if needle in word:
                            return True
        return False

    def leaks(self, example: Example) -> bool:
        return self.contains(normalise(prompt_text(example))) or self.contains(normalise(completion_text(example)))


def _anchors(needle: str) -> list[tuple[str, str]]:
    """("after"/"before", the ``_ANCHOR`` characters after/before a space of ``needle``)."""
    out, space = [], needle.find(" ")
    while space >= 0:
        if space + 1 + _ANCHOR <= len(needle):
            out.append(("after", needle[space + 1 : space + 1 + _ANCHOR]))
        if space >= _ANCHOR:
            out.append(("before", needle[space - _ANCHOR : space]))
        space = needle.find(" ", space + 1)
    return out


def held_out_texts(task) -> set[str]:
    """The normalised texts of ``task``'s held-out items that an example must not contain."""
    train_answers = set()
    if task.kind != "classification":
        train_answers = {normalise(task.answer_text(item)) for item in task.splits.get("train", [])}
    texts = set()
    for split in HELD_OUT_SPLITS:
        for item in task.splits.get(split, []):
            values = [v for v in item.fields.values() if isinstance(v, str)]
            if task.kind != "classification":
                answer = normalise(task.answer_text(item))
                if answer not in train_answers:
                    values.append(answer)
            texts.update(t for t in map(normalise, values) if len(t) >= MIN_CHARS)
    return texts


def leak_filter(language: str, corpus_tag: str) -> LeakFilter:
    """The filter for ``language``: every offline task built on the corpus ``corpus_tag``.

    A task that cannot be built (too few items on a small corpus) has no held-out
    items to protect; it is skipped and named in ``skipped``. Cached per corpus
    build: building the tasks takes seconds.
    """
    from lib.corpus import corpus_path, load_manifest

    load_manifest(language, corpus_tag)  # a clear error when the corpus is not built
    manifest = corpus_path(language, corpus_tag) / "manifest.json"
    return _leak_filter(language, corpus_tag, str(manifest), manifest.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _leak_filter(language: str, corpus_tag: str, manifest: str, built: int) -> LeakFilter:
    from lib.tasks.offline import build_offline_task, offline_task_ids

    needles: set[str] = set()
    used, skipped = [], {}
    for task_id in offline_task_ids(language):
        family, _, _ = task_id.partition(":")
        try:
            task = build_offline_task(family, language, corpus_tag=corpus_tag)
        except ValueError as exc:  # TaskError, CorpusError: nothing to evaluate, so nothing to leak
            skipped[task_id] = str(exc)
            continue
        used.append(task_id)
        needles |= held_out_texts(task)
    return LeakFilter(frozenset(needles), used, skipped)
