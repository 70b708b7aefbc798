"""The instruction example record and the small text helpers every builder shares.

An example is one dict in TRL's conversational prompt-completion format::

    {"id": "translation:from_en:libreoffice:...#par_id3", "source": "translation",
     "group": "swriter/guide/...xhp.html",
     "prompt": [{"role": "user", "content": "Przetłumacz na język polski:\\n..."}],
     "completion": [{"role": "assistant", "content": "..."}]}

TRL's ``SFTTrainer`` renders it with the model's chat template and, with
``completion_only_loss``, trains on the assistant turn only. ``group`` is the
corpus split key the example was derived from (empty for hub data): it decides
the split, so one help file or synset never lands in two splits.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from typing import Any

from lib.languages import TARGET_LANGUAGES

LANGUAGES = TARGET_LANGUAGES  # instruction data exists for the target languages
ROLES = ("system", "user", "assistant")

Example = dict[str, Any]
Message = dict[str, str]


class InstructionDataError(ValueError):
    """Bad input to the instruction-data builder (language, source, schema, empty result);
    the message names the problem and, where there is one, the fix."""


class InstructionsNotBuiltError(InstructionDataError, FileNotFoundError):
    """The instruction set asked for has not been built (or its build did not finish)."""


def check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise InstructionDataError(
            f"unknown language {language!r}; instruction data exists for {', '.join(LANGUAGES)}")


def make_example(id: str, source: str, group: str, prompt: str | Sequence[Message], completion: str) -> Example:
    """One record; a plain-string prompt becomes a single user turn."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    return {"id": id, "source": source, "group": group, "prompt": messages,
            "completion": [{"role": "assistant", "content": completion}]}


def normalise(text: str) -> str:
    """NFC, whitespace collapsed: what deduplication and the leak filter compare."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def prompt_text(example: Example) -> str:
    return "\n".join(m["content"] for m in example["prompt"])


def completion_text(example: Example) -> str:
    return "\n".join(m["content"] for m in example["completion"])


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of ``parts`` that is the same on every run and machine (unlike ``hash``)."""
    key = "\x00".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def pick_phrasing(templates: Sequence[str], seed: int, key: str) -> str:
    """One of several phrasings, chosen by (seed, key). ``key`` is the example's input
    (the text to translate, the word, ...), so the same input always gets the same
    prompt and deduplication on the prompt still sees repeats."""
    return templates[stable_hash("phrasing", seed, key) % len(templates)]


def as_sentence(text: str, language: str) -> str:
    """``text`` with a capital first letter and a final full stop (dotted İ in Turkish)."""
    text = " ".join(text.split())
    if not text:
        return text
    first = text[0]
    if first.islower():
        first = {"i": "İ", "ı": "I"}.get(first, first.upper()) if language == "tr" else first.upper()
        text = first + text[1:]
    return text if text[-1] in ".!?…" else text + "."
