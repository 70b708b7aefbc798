"""Instruction examples made from the packaged data (no download, no hub).

Each builder is ``(language, corpus_tag, seed) -> list[Example]`` and returns
examples from groups that the corpus assigns to its TRAIN split only
(``lib.tasks.offline.split_function``: the corpus's own seed and fractions), so
nothing is derived from a help file, synset or context that a benchmark
validation or test item comes from. Groups are split by that hash rule whether
or not the corpus kept their document (short WordNet entries fall under
``min_chars``), exactly as the offline tasks do.

- ``translation`` (pl, tr, ru): aligned English<->target pairs of the corpus,
  both directions.
- ``definitions`` (tr): "what does the word X mean" -> its Turkish WordNet
  definition; only words with one sense in WordNet, since a polysemous word
  has no single right answer.
- ``manpages`` (pl, tr, ru): "what does the command X do" -> the description
  of the man page's NAME line (other sections: "what does the page describe").
- ``word_senses`` (ru): a context and a word -> the definition of the sense
  that annotators gave the word there (rl-wsd-labeled).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from lib.instructions import templates as T
from lib.instructions.records import Example, as_sentence, make_example, normalise, pick_phrasing

TRANSLATION_CHARS = (20, 400)  # both sides of a pair; very short ones are UI labels, long ones lists
DEFINITION_CHARS = (10, 400)
LITERAL_CHARS = 40
DESCRIPTION_CHARS = (8, 300)
SENSE_CHARS = (3, 500)
COMMAND_SECTIONS = ("1", "6", "8")  # user commands, games, administration
_LITERAL = re.compile(r"^[^\W\d_]+(?:[ '’-][^\W\d_]+)*$")  # words only: no "(hashtag)", no numbers


class Builder(NamedTuple):
    languages: tuple[str, ...]
    build: Callable[[str, str, int], list[Example]]


def _train_only(language: str, corpus_tag: str) -> Callable[[str], bool]:
    from lib.tasks.offline import split_function

    split_of = split_function(language, corpus_tag)
    return lambda group: split_of(group) == "train"


# ---------------------------------------------------------------- translation


def translation_examples(language: str, corpus_tag: str, seed: int) -> list[Example]:
    """Both directions from the corpus's aligned train pairs (LibreOffice help; WordNet for tr)."""
    from lib.corpus import load_pairs

    in_train = _train_only(language, corpus_tag)
    lo, hi = TRANSLATION_CHARS
    out = []
    for row in load_pairs(language, corpus_tag)["train"]:
        en, target = row["en"].strip(), row["target"].strip()
        if not (lo <= len(en) <= hi and lo <= len(target) <= hi) or normalise(en) == normalise(target):
            continue
        if not in_train(row["group"]):
            continue  # never happens for a corpus built as lib.corpus does; kept as the promise
        for direction, source_text, answer, phrasings in (("from_en", en, target, T.TRANSLATE_FROM_EN),
                                                          ("to_en", target, en, T.TRANSLATE_TO_EN)):
            prompt = pick_phrasing(phrasings[language], seed, f"translate:{direction}:{source_text}")
            out.append(make_example(f"translation:{direction}:{row['id']}", "translation", row["group"],
                                    prompt.format(text=source_text), answer))
    return out


# ---------------------------------------------------------------- Turkish WordNet definitions


def definition_examples(language: str, corpus_tag: str, seed: int) -> list[Example]:
    """"What does X mean" -> the definition, for words with a single WordNet sense."""
    from lib.tasks.offline import turkish_synsets

    in_train = _train_only(language, corpus_tag)
    synsets = [s for s in turkish_synsets() if s.id and s.definitions]
    senses = Counter(lit.casefold() for s in synsets for lit in set(s.literals))
    lo, hi = DEFINITION_CHARS
    out = []
    for synset in synsets:
        definition = synset.definitions[0]
        if not lo <= len(definition) <= hi or not in_train(synset.id):
            continue
        word = next((lit for lit in synset.literals if len(lit) <= LITERAL_CHARS and _LITERAL.match(lit)
                     and senses[lit.casefold()] == 1), None)
        if word is None or word.casefold() in definition.casefold():
            continue  # ambiguous words, and definitions that only repeat the word
        prompt = pick_phrasing(T.DEFINE_WORD[language], seed, f"define:{word}")
        out.append(make_example(f"definitions:{synset.id}", "definitions", synset.id,
                                prompt.format(word=word), as_sentence(definition, language)))
    return out


# ---------------------------------------------------------------- man pages

# The NAME heading as the translated man pages render it (checked on manpages-pl/-tr/-ru);
# "NAME" for pages left untranslated.
NAME_HEADINGS: dict[str, tuple[str, ...]] = {"pl": ("NAZWA",), "tr": ("İSİM",), "ru": ("ИМЯ",)}
_NAME_LINE = re.compile(r"^(?P<names>[^\s,]+(?:,\s*[^\s,]+)*)\s+[-–—]\s+(?P<description>\S.*)$")


def name_line(text: str, language: str) -> tuple[list[str], str] | None:
    """(names, description) of a rendered man page's NAME section, e.g.
    ``NAZWA`` / ``seq - wypisuje kolejne liczby`` -> (["seq"], "wypisuje kolejne liczby");
    None when the page has no such line."""
    headings = (*NAME_HEADINGS.get(language, ()), "NAME")
    lines = [line.strip() for line in text.split("\n")]
    for index, line in enumerate(lines):
        if line.upper() not in headings:
            continue
        for candidate in lines[index + 1 : index + 3]:
            match = _NAME_LINE.match(candidate)
            if match:
                names = [n.strip() for n in match["names"].split(",") if n.strip()]
                return names, match["description"].strip()
            if candidate.isupper():
                return None  # the next section began: a NAME section without "name - description"
        return None
    return None


def manpage_examples(language: str, corpus_tag: str, seed: int) -> list[Example]:
    """"What does command X do" (sections 1, 6, 8) or "what does page X(n) describe"
    -> the NAME line's description, from the corpus's train man pages."""
    from lib.corpus import load_corpus

    in_train = _train_only(language, corpus_tag)
    lo, hi = DESCRIPTION_CHARS
    out = []
    for doc in load_corpus(language, corpus_tag)["train"]:
        if doc["source"] != "manpages" or not in_train(doc["group"]):
            continue
        parsed = name_line(doc["text"], language)
        if parsed is None:
            continue
        names, description = parsed
        if not lo <= len(description) <= hi or normalise(description) in {normalise(n) for n in names}:
            continue
        section = doc["topic"]
        if section[:1] in COMMAND_SECTIONS:
            key, phrasings, name = f"command:{names[0]}", T.COMMAND[language], names[0]
        else:
            key, phrasings, name = f"manpage:{', '.join(names)}({section})", T.MAN_PAGE[language], ", ".join(names)
        prompt = pick_phrasing(phrasings, seed, key).format(name=name, section=section)
        out.append(make_example(f"manpages:{doc['group']}", "manpages", doc["group"], prompt,
                                as_sentence(description, language)))
    return out


# ---------------------------------------------------------------- Russian word senses

_GLOSS = re.compile(r"‘([^’]+)’")
_SENSE_NUMBER = re.compile(r"^\S+\s+\d+(?:\.\d+)*\s*[:,]?\s*")  # "брак 1.1: " before some definitions


def sense_gloss(definition: str) -> str:
    """The readable part of an rl-wsd-labeled sense definition: the quoted gloss
    (‘...’) where there is one, else the definition without its "word N.N:" prefix.
    Valency slots (А1, А2) stay: without them many glosses no longer parse."""
    match = _GLOSS.search(definition)
    text = match[1] if match else _SENSE_NUMBER.sub("", definition)
    return " ".join(text.split()).strip(" .;:")


def word_sense_examples(language: str, corpus_tag: str, seed: int) -> list[Example]:
    """A context and a word -> the meaning of the word there (the annotated sense)."""
    from lib.corpus import rl_wsd_items
    from lib.tasks.offline import WSD_CONTEXT_CHARS, trim_context

    in_train = _train_only(language, corpus_tag)
    lo, hi = SENSE_CHARS
    out = []
    for item in rl_wsd_items():
        gloss = sense_gloss(item.definition)
        if not in_train(item.group) or not lo <= len(gloss) <= hi or "None" in gloss:
            continue
        # the benchmark's own rendering of the context, so the leak filter compares like with like
        context = trim_context(item.left, item.target, item.right, WSD_CONTEXT_CHARS)
        prompt = pick_phrasing(T.WORD_SENSE[language], seed, f"sense:{item.word}:{context}")
        out.append(make_example(f"word_senses:{item.group}", "word_senses", item.group,
                                prompt.format(context=context, word=item.word), as_sentence(gloss, language)))
    return out


# ---------------------------------------------------------------- registry

BUILDERS: dict[str, Builder] = {
    "translation": Builder(("pl", "tr", "ru"), translation_examples),
    "definitions": Builder(("tr",), definition_examples),
    "manpages": Builder(("pl", "tr", "ru"), manpage_examples),
    "word_senses": Builder(("ru",), word_sense_examples),
}


def builder_names(language: str) -> list[str]:
    """The packaged builders that exist for ``language`` (what ``"packaged"`` expands to)."""
    return [name for name, builder in BUILDERS.items() if language in builder.languages]
