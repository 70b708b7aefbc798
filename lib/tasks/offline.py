"""Offline tasks built from the packaged data, split consistently with the corpus.

Every item takes the split of the corpus group it comes from (the same help
file, WordNet synset or rl-wsd context lands in the same split as in
``lib.corpus``), and held-out items whose text is a line of the corpus train
split are dropped, so no test item was seen in continued pre-training on the
train split.

Families (``OFFLINE``):

- ``translation_choice_from_en`` / ``translation_choice_to_en`` (pl, tr, ru),
  Belebele-like: an English LibreOffice help paragraph and four target-language
  paragraphs, one its translation (or the reverse); distractors come from the
  same help module and the same split and are the closest in length.
- ``topic_classification`` (pl, tr, ru): which LibreOffice module (Writer,
  Calc, Impress, ...) a help paragraph belongs to; imbalanced, so macro-F1.
- ``word_sense_choice`` (ru): the sense of a word in context, among the
  definitions of all its senses (rl-wsd-labeled).
- ``definition_to_word`` (tr): which of four words a Turkish WordNet definition
  defines; ``definition_to_word_gen`` asks the model to write the word instead.
- ``copy`` (pl, tr, ru, en): repeat a paragraph of the corpus test split verbatim
  (the LEP paper's DaruCopy; scoring in ``lib.tasks.copy_task``). Not part of the
  ``offline`` group: it is named on its own (``copy``, ``copy:en``), since it
  generates hundreds of tokens per item and exists to check adapted models.
"""

from __future__ import annotations

import functools
import math
import random
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lib.languages import LANGUAGES
from lib.tasks.base import Item, PromptFormat, Task, TaskError

LANGUAGE_NAMES = {"pl": "Polski", "tr": "Türkçe", "ru": "Русский", "en": "English"}
# LibreOffice help modules (the top folder of a help file) and the names users know
MODULES = {"swriter": "Writer", "scalc": "Calc", "simpress": "Impress", "sdraw": "Draw",
           "sdatabase": "Base", "smath": "Math", "schart": "Chart", "sbasic": "Basic"}
PARAGRAPH_CHARS = (25, 300)  # translation choice: short paragraphs keep scoring cheap
TOPIC_CHARS = (15, 500)
WSD_CONTEXT_CHARS = 120  # characters kept on each side of the ambiguous word
DEFINITION_CHARS = (15, 200)
# copy task: at least a few sentences, so that repeating it verbatim is a test of the model
# and a 1% slip is a visible character or two; at most ~500 characters (about 370 SmolLM2
# tokens of Russian, 250 of Polish), so that prompt plus answer stay within a small model's
# context and a CPU run of the capped 500 items stays in minutes per model, not hours
COPY_CHARS = (150, 500)
COPY_PER_DOCUMENT = 2  # paragraphs drawn (by seed) from one document: one long man page must not fill the task
N_OPTIONS = 4
_DISTRACTOR_POOL = 8  # distractors are drawn from this many closest-in-length candidates

_TOPIC_PROMPT = {
    "pl": "Tekst z pomocy LibreOffice: {text}\nModuł LibreOffice:",
    "tr": "LibreOffice yardım metni: {text}\nLibreOffice modülü:",
    "ru": "Текст из справки LibreOffice: {text}\nМодуль LibreOffice:",
}


@dataclass(frozen=True)
class OfflineFamily:
    languages: tuple[str, ...]
    build: Callable[[str, str, int], Task]  # (language, corpus_tag, seed) -> Task
    description: str
    in_offline_group: bool = True  # named by tasks=[offline]; False: only by its own name


# ---------------------------------------------------------------- corpus access


def _normal(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


@functools.lru_cache(maxsize=8)
def _train_lines_cached(language: str, tag: str, path: str, built: float) -> frozenset[str]:
    from lib.corpus import load_corpus

    train = load_corpus(language, tag)["train"]
    return frozenset(_normal(line) for text in train["text"] for line in text.split("\n"))


def train_lines(language: str, tag: str) -> frozenset[str]:
    """Every (normalised) line of the corpus train split: held-out items must avoid them."""
    from lib.corpus import corpus_path, load_manifest

    path = corpus_path(language, tag)
    load_manifest(language, tag)  # a clear error when the corpus is not built
    return _train_lines_cached(language, tag, str(path), (path / "manifest.json").stat().st_mtime)


def split_function(language: str, tag: str) -> Callable[[str], str]:
    """The corpus's own split assignment, with the seed and fractions it was built with."""
    from lib.corpus import assign_split, load_manifest

    p = load_manifest(language, tag)["parameters"]
    return functools.partial(assign_split, seed=p["seed"], validation_fraction=p["validation_fraction"],
                             test_fraction=p["test_fraction"])


def _rng(seed: int, key: str) -> random.Random:
    return random.Random(f"{seed}:{key}")


# ---------------------------------------------------------------- translation choice


def _pair_pool(rows, lo: int, hi: int, banned: frozenset[str]) -> list[dict]:
    """Pairs with both sides within [lo, hi] characters, each side unique in the split."""
    rows = [r for r in rows if r["source"] == "libreoffice"
            and lo <= len(r["en"]) <= hi and lo <= len(r["target"]) <= hi]
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts["en:" + r["en"]] += 1
        counts["xx:" + r["target"]] += 1
    return sorted((r for r in rows if counts["en:" + r["en"]] == 1 and counts["xx:" + r["target"]] == 1
                   and _normal(r["target"]) not in banned and _normal(r["en"]) not in banned),
                  key=lambda r: r["id"])


def _distractors(row: dict, pool: list[dict], side: str, seed: int, k: int) -> list[dict]:
    """``k`` rows of the same module whose ``side`` is closest in length to ``row``'s."""
    same = [c for c in pool if c["topic"] == row["topic"] and c["id"] != row["id"]
            and c["en"] != row["en"] and c["target"] != row["target"]]
    if len(same) < k:
        same = [c for c in pool if c["id"] != row["id"] and c["en"] != row["en"]
                and c["target"] != row["target"]]
    length = len(row[side])
    same.sort(key=lambda c: (abs(math.log(len(c[side]) / length)), c["id"]))
    return _rng(seed, "distractors:" + row["id"]).sample(same[:max(_DISTRACTOR_POOL, k)], k)


def translation_items(rows: list[dict], direction: str, seed: int, with_options: bool = True) -> list[Item]:
    """Items from pair rows; ``direction`` is ``from_en`` (English query, target options)
    or ``to_en``. Without options (few-shot pools) an item holds only its answer."""
    side = "target" if direction == "from_en" else "en"
    if with_options and len(rows) < N_OPTIONS:
        return []  # too few paragraphs for one item with distractors (tiny corpora)
    items = []
    for row in rows:
        fields = {"en": row["en"], "target": row["target"]}
        if not with_options:
            items.append(Item(row["id"], fields, 0, (row[side],), group=row["group"]))
            continue
        options = [row] + _distractors(row, rows, side, seed, N_OPTIONS - 1)
        _rng(seed, "order:" + row["id"]).shuffle(options)
        label = next(i for i, o in enumerate(options) if o["id"] == row["id"])
        items.append(Item(row["id"], fields, label, tuple(o[side] for o in options), group=row["group"]))
    return items


def _translation(direction: str) -> Callable[[str, str, int], Task]:
    def build(language: str, tag: str, seed: int) -> Task:
        from lib.corpus import load_pairs

        pairs = load_pairs(language, tag)
        # held out: neither side a line of the corpus train split or a side of a train pair
        banned = train_lines(language, tag) | {_normal(text) for column in ("en", "target")
                                               for text in pairs["train"][column]}
        name = LANGUAGE_NAMES[language]
        template = (f"English: {{en}}\n{name}:" if direction == "from_en"
                    else f"{name}: {{target}}\nEnglish:")
        held_out = {split: translation_items(_pair_pool(pairs[split], *PARAGRAPH_CHARS, banned), direction, seed)
                    for split in ("validation", "test")}
        train = _pair_pool(pairs["train"], *PARAGRAPH_CHARS, frozenset())
        return Task(
            name=f"translation_choice_{direction}", language=language, kind="multiple_choice",
            prompt=PromptFormat(template),
            splits={"train": translation_items(train, direction, seed, with_options=False), **held_out},
            description=(f"Which of {N_OPTIONS} paragraphs is the translation "
                         + ("of the English one" if direction == "from_en" else "into English")
                         + "; distractors from the same help module, closest in length"),
            source="LibreOffice help (Debian libreoffice-help-*), aligned paragraph ids",
        )
    return build


# ---------------------------------------------------------------- topic classification


def _topic_rows(docs, lo: int, hi: int, banned: frozenset[str]) -> list[tuple[str, str, str, str]]:
    """(id, group, module, paragraph) for unique paragraphs of application modules' help files."""
    rows = []
    for doc in docs:
        if doc["source"] != "libreoffice" or doc["topic"] not in MODULES:
            continue
        for index, line in enumerate(doc["text"].split("\n")):
            if lo <= len(line) <= hi:
                rows.append((f"{doc['id']}#{index}", doc["group"], doc["topic"], line))
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row[3]] += 1
    return [r for r in rows if counts[r[3]] == 1 and _normal(r[3]) not in banned]


def _topic(language: str, tag: str, seed: int) -> Task:
    from lib.corpus import load_corpus

    corpus = load_corpus(language, tag)
    classes = tuple(MODULES.values())
    label_of = {topic: classes.index(name) for topic, name in MODULES.items()}
    banned = train_lines(language, tag)

    def items(docs, banned):
        return [Item(rid, {"text": text}, label_of[topic], group=group)
                for rid, group, topic, text in _topic_rows(docs, *TOPIC_CHARS, banned)]

    return Task(
        name="topic_classification", language=language, kind="classification",
        prompt=PromptFormat(_TOPIC_PROMPT[language]), classes=classes,
        splits={"train": items(corpus["train"], frozenset()), "validation": items(corpus["validation"], banned),
                "test": items(corpus["test"], banned)},
        description="Which LibreOffice module a help paragraph belongs to (8 classes, imbalanced)",
        source="LibreOffice help (Debian libreoffice-help-*), the help file's module folder",
    )


# ---------------------------------------------------------------- Russian word senses


_SENSE_PREFIX = re.compile(r"^\S+\s+\d+\s*:\s*")


def trim_context(left: str, target: str, right: str, width: int) -> str:
    """The word-sense context as the benchmark shows it: at most ``width`` characters each side,
    cut at a word. Public because lib.instructions renders its examples the same way."""
    left = " ".join(left.split())
    right = " ".join(right.split())
    if len(left) > width:
        cut = left[-width:]
        left = "…" + (cut.split(" ", 1)[1] if " " in cut else cut)
    if len(right) > width:
        cut = right[:width]
        right = (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"
    return f"{left} «{target.strip()}» {right}".strip()


def _wsd(language: str, tag: str, seed: int) -> Task:
    from lib.corpus import rl_wsd_items

    split_of = split_function(language, tag)
    raws = [(raw, split_of(raw.group), _normal(raw.text)) for raw in rl_wsd_items() if len(raw.senses) >= 2]
    # held out: not a line of the corpus train split, nor the text of a train-split item
    # (contexts under min_chars are not in the corpus; one text may be labelled for two words)
    banned = train_lines(language, tag) | {text for _, split, text in raws if split == "train"}
    splits: dict[str, list[Item]] = {"train": [], "validation": [], "test": []}
    seen: dict[str, set[str]] = defaultdict(set)
    for raw, split, text in raws:
        if text in seen[split] or (split != "train" and text in banned):
            continue
        seen[split].add(text)
        keys = sorted(raw.senses, key=lambda k: (len(k), k))
        choices = tuple(_SENSE_PREFIX.sub("", raw.senses[k]).strip() for k in keys)
        context = trim_context(raw.left, raw.target, raw.right, WSD_CONTEXT_CHARS)
        splits[split].append(Item(raw.id, {"text": context, "word": raw.word}, keys.index(raw.sense),
                                  choices, group=raw.group))
    return Task(
        name="word_sense_choice", language=language, kind="multiple_choice",
        prompt=PromptFormat("{text}\nЗначение слова «{word}» в этом тексте:"), splits=splits,
        description="The sense of a word in context, among the definitions of all its senses",
        source="PyPI rl-wsd-labeled (contexts that both annotators agree on)",
    )


# ---------------------------------------------------------------- Turkish WordNet


@dataclass(frozen=True)
class Synset:
    id: str
    pos: str
    literals: tuple[str, ...]
    definitions: tuple[str, ...]


def turkish_wordnet_path() -> Path:
    from lib.packages import pypi_package

    root = pypi_package("nlptoolkit-wordnet", "1.0.26")
    hits = sorted(root.rglob("turkish_wordnet.xml"))
    if not hits:
        raise FileNotFoundError(f"no turkish_wordnet.xml in {root}")
    return hits[0]


@functools.lru_cache(maxsize=1)
def turkish_synsets() -> tuple[Synset, ...]:
    """Every synset of the Turkish WordNet: id (the corpus group), POS, literals, definitions."""
    out = []
    for _, elem in ET.iterparse(turkish_wordnet_path(), events=("end",)):
        if elem.tag != "SYNSET":
            continue
        literals = tuple(" ".join((lit.text or "").split()) for lit in elem.iter("LITERAL"))
        definitions = tuple(" ".join((d.text or "").split()) for d in elem.findall("DEF"))
        out.append(Synset((elem.findtext("ID") or "").strip(), (elem.findtext("POS") or "").strip(),
                          tuple(x for x in literals if x), tuple(d for d in definitions if d)))
        elem.clear()
    return tuple(out)


_WORD = re.compile(r"^[^\W\d_]{3,}$")


def _headword(synset: Synset) -> str | None:
    """The first single-word literal that the definition does not give away."""
    if not synset.definitions:
        return None
    definition = synset.definitions[0].lower()
    for word in synset.literals:
        if _WORD.match(word):
            stem = word.lower()[:max(4, len(word) - 2)]
            if stem not in definition:
                return word
    return None


def _definition_rows(language: str, tag: str) -> dict[str, list[tuple[Synset, str]]]:
    split_of = split_function(language, tag)
    synsets = [(s, split_of(s.id)) for s in turkish_synsets() if s.id and s.definitions]
    # held out: not a line of the corpus train split, nor any train-split synset's definition
    banned = train_lines(language, tag) | {_normal(d) for s, split in synsets if split == "train"
                                           for d in s.definitions}
    rows: dict[str, list[tuple[Synset, str]]] = {"train": [], "validation": [], "test": []}
    seen: dict[str, set[str]] = defaultdict(set)
    for synset, split in synsets:
        word = _headword(synset)
        if word is None:
            continue
        definition = synset.definitions[0]
        if not DEFINITION_CHARS[0] <= len(definition) <= DEFINITION_CHARS[1]:
            continue
        if definition in seen[split] or (split != "train" and _normal(definition) in banned):
            continue
        seen[split].add(definition)
        rows[split].append((synset, word))
    return rows


def _word_items(rows: list[tuple[Synset, str]], seed: int, with_options: bool) -> list[Item]:
    """Items of definition -> word; distractors are headwords of other synsets of the
    split with the same part of speech and the closest lengths."""
    by_length: dict[tuple[str, int], list[str]] = defaultdict(list)
    for synset, word in rows:
        by_length[(synset.pos, len(word))].append(word)
    for words in by_length.values():
        words[:] = sorted(set(words))
    items = []
    for synset, word in rows:
        fields = {"definition": synset.definitions[0]}
        if not with_options:
            items.append(Item(synset.id, fields, 0, (word,), target=word, group=synset.id))
            continue
        own = {w.lower() for w in synset.literals}
        candidates: list[str] = []
        for distance in range(0, 8):  # lengths L, L-1, L+1, L-2, ... until the pool is full
            for length in sorted({len(word) - distance, len(word) + distance}):
                candidates += [w for w in by_length.get((synset.pos, length), ()) if w.lower() not in own]
            if len(candidates) >= 4 * _DISTRACTOR_POOL:
                break
        if len(candidates) < N_OPTIONS - 1:
            continue
        rng = _rng(seed, "word:" + synset.id)
        options = [word] + rng.sample(candidates, N_OPTIONS - 1)
        rng.shuffle(options)
        items.append(Item(synset.id, fields, options.index(word), tuple(options), target=word,
                          group=synset.id))
    return items


def _definition(generate: bool) -> Callable[[str, str, int], Task]:
    def build(language: str, tag: str, seed: int) -> Task:
        rows = _definition_rows(language, tag)
        kind = "generation" if generate else "multiple_choice"
        return Task(
            name="definition_to_word" + ("_gen" if generate else ""), language=language, kind=kind,
            prompt=PromptFormat("Tanım: {definition}\nKelime:"),
            splits={"train": _word_items(rows["train"], seed, with_options=False),
                    **{split: _word_items(rows[split], seed, with_options=not generate)
                       for split in ("validation", "test")}},
            description=("Write the word a WordNet definition defines" if generate else
                         f"Which of {N_OPTIONS} words (same part of speech, similar length) a "
                         "WordNet definition defines"),
            source="PyPI nlptoolkit-wordnet (Turkish WordNet)", max_new_tokens=8,
        )
    return build


# ---------------------------------------------------------------- copy (DaruCopy)


# (instruction, answer label): a chat model gets the instruction and the paragraph alone (a label
# before the paragraph gets echoed); a plain prompt adds the label as the cue to answer after
_COPY_PROMPT = {
    "pl": ("Powtórz poniższy tekst dokładnie, bez żadnych zmian ani komentarzy.", "Powtórzony tekst"),
    "tr": ("Aşağıdaki metni hiçbir değişiklik yapmadan ve yorum eklemeden aynen tekrarla.", "Tekrarlanan metin"),
    "ru": ("Повтори текст ниже в точности, без изменений и комментариев.", "Повторённый текст"),
    "en": ("Repeat the text below exactly, without any changes or comments.", "Repeated text"),
}


def copy_paragraphs(language: str, tag: str, seed: int, split: str = "test") -> list[tuple[str, str, str]]:
    """(id, group, paragraph) for lines of ``split`` within ``COPY_CHARS``, unique in the split and
    never a line of the train split, at most ``COPY_PER_DOCUMENT`` per document (drawn by
    ``seed``), sorted by id. Held-out splits only: the copy task never shows a train paragraph."""
    from lib.corpus import load_corpus

    if split == "train":
        raise TaskError("copy paragraphs come from a held-out split (validation or test), not train")
    banned = train_lines(language, tag)
    lo, hi = COPY_CHARS
    per_document = []
    counts: dict[str, int] = defaultdict(int)
    for doc in load_corpus(language, tag)[split]:
        lines = [(f"{doc['id']}#{index}", doc["group"], line)
                 for index, line in enumerate(doc["text"].split("\n")) if lo <= len(line.strip()) <= hi]
        lines = [(rid, group, line.strip()) for rid, group, line in lines if _normal(line) not in banned]
        for *_, line in lines:
            counts[line] += 1
        per_document.append((doc["id"], lines))
    out = []
    for doc_id, lines in per_document:
        lines = [row for row in lines if counts[row[2]] == 1]  # a repeated line (boilerplate) is no test
        if len(lines) > COPY_PER_DOCUMENT:
            lines = _rng(seed, "copy:" + doc_id).sample(lines, COPY_PER_DOCUMENT)
        out += lines
    return sorted(out, key=lambda row: row[0])


def _copy(language: str, tag: str, seed: int) -> Task:
    items = [Item(rid, {"text": text}, target=text, group=group)
             for rid, group, text in copy_paragraphs(language, tag, seed)]
    instruction, label = _COPY_PROMPT[language]
    return Task(
        name="copy", language=language, kind="copy",
        prompt=PromptFormat("{text}", answer_prefix=f"\n\n{label}: ", instruction=instruction),
        splits={"test": items}, fewshot_split="",
        description=(f"Repeat a paragraph ({COPY_CHARS[0]}-{COPY_CHARS[1]} characters) verbatim, "
                     "in the chat template when the model has one (DaruCopy)"),
        source="the corpus test split (01_prepare_data), lines never in its train split",
    )


# ---------------------------------------------------------------- registry


OFFLINE: dict[str, OfflineFamily] = {
    "translation_choice_from_en": OfflineFamily(("pl", "tr", "ru"), _translation("from_en"),
                                                "English paragraph -> its translation among 4"),
    "translation_choice_to_en": OfflineFamily(("pl", "tr", "ru"), _translation("to_en"),
                                              "target paragraph -> its English original among 4"),
    "topic_classification": OfflineFamily(("pl", "tr", "ru"), _topic,
                                          "help paragraph -> LibreOffice module (8 classes)"),
    "word_sense_choice": OfflineFamily(("ru",), _wsd, "word in context -> its sense"),
    "definition_to_word": OfflineFamily(("tr",), _definition(False), "definition -> word among 4"),
    "definition_to_word_gen": OfflineFamily(("tr",), _definition(True), "definition -> word, generated"),
    "copy": OfflineFamily(LANGUAGES, _copy, "repeat a test-split paragraph verbatim (DaruCopy)",
                          in_offline_group=False),
}

CLASSIFICATION_FAMILIES = ("topic_classification",)  # the families whose kind is classification
ZERO_SHOT_FAMILIES = ("copy",)  # the families of a zero-shot-only kind (base.ZERO_SHOT_KINDS)


def offline_task_ids(language: str | None = None, *, every: bool = False) -> list[str]:
    """The ``offline`` group's task ids (of ``language``); ``every``: with the families named
    only on their own (``copy``)."""
    return [f"{family}:{lang}" for family, spec in OFFLINE.items() for lang in spec.languages
            if language in (None, lang) and (every or spec.in_offline_group)]


def build_offline_task(family: str, language: str, *, corpus_tag: str = "default",
                       seed: int = 1234) -> Task:
    if family not in OFFLINE:
        raise TaskError(f"unknown offline task {family!r}; known: {', '.join(OFFLINE)}")
    spec = OFFLINE[family]
    if language not in spec.languages:
        raise TaskError(f"offline task {family!r} exists for {', '.join(spec.languages)}, not {language!r}")
    return spec.build(language, corpus_tag, seed)
