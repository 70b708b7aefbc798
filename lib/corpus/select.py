"""Deterministic, source-mixed selections of a corpus split: what every stage scores or trains on."""

from __future__ import annotations

import hashlib

from lib.corpus.build import load_corpus, load_pairs
from lib.corpus.sources import CorpusError


def select_indices(texts: list[str], ids: list[str], max_chars: int, seed: int = 0) -> list[int]:
    """Indices of a deterministic, source-mixed subset of about ``max_chars`` characters (0 = all).

    Documents are visited in the order of a hash of their id, so the subset
    draws from every source rather than the first one on disk.
    """
    if not texts:
        raise CorpusError("no documents to select from")
    order = sorted(range(len(texts)),
                   key=lambda i: hashlib.sha1(f"{seed}:{ids[i]}".encode()).hexdigest())
    chosen, total = [], 0
    for i in order:
        if max_chars and total >= max_chars:
            break
        chosen.append(i)
        total += len(texts[i])
    return chosen


def select_texts(texts: list[str], ids: list[str], max_chars: int, seed: int = 0) -> list[str]:
    return [texts[i] for i in select_indices(texts, ids, max_chars, seed)]


def split_documents(language: str, tag: str, split: str) -> tuple[list[str], list[str]]:
    """Texts and ids of one split's non-empty documents; an empty or missing split is an error
    that names the corpus and the split."""
    corpus = load_corpus(language, tag)  # CorpusNotBuiltError says how to build it
    if split not in corpus:
        raise CorpusError(f"the {language}/{tag} corpus has no {split!r} split (it has {', '.join(corpus)})")
    data = corpus[split]
    texts = [t for t in data["text"] if t and t.strip()]
    if not texts:
        raise CorpusError(f"the {split} split of the {language}/{tag} corpus holds no text")
    ids = list(data["id"]) if "id" in data.column_names else [str(i) for i in range(len(data))]
    if len(texts) != len(data):  # keep ids aligned with the non-empty texts
        ids = [i for i, t in zip(ids, data["text"]) if t and t.strip()]
    return texts, ids


def pair_documents(language: str, tag: str, split: str, seed: int = 0) -> tuple[list[str], list[str]]:
    """The corpus's aligned English<->target pairs of one split as documents: each pair the two
    paragraphs on two lines, English first or second by a hash of (seed, pair id), so that training
    on them reads both directions. Ids are the pairs' own, prefixed ``pairs:``."""
    try:
        pairs = load_pairs(language, tag)
    except FileNotFoundError:
        pairs = {}
    rows = pairs[split] if split in pairs else []
    if not len(rows):
        raise CorpusError(f"the {language}/{tag} corpus holds no aligned English<->{language} pairs in its "
                          f"{split} split (only pl, tr and ru corpora have them)")
    texts, ids = [], []
    for row in rows:
        english_first = hashlib.sha1(f"{seed}:{row['id']}".encode()).digest()[0] % 2 == 0
        first, second = (row["en"], row["target"]) if english_first else (row["target"], row["en"])
        texts.append(f"{first}\n{second}")
        ids.append(f"pairs:{row['id']}")
    return texts, ids
