"""General English text that no target corpus translates: an honest forgetting check.

The ``en`` corpus is LibreOffice help, the English side of text whose pl/tr/ru side
is training text, so a drop in its bits per character may be the domain learnt, not
English kept. This text comes from Debian's English fortune files (packages
``fortunes-min`` and ``fortunes``: quotes, jokes, poems, literature, definitions), of
which no pl/tr/ru corpus holds a translation (``fortunes-pl`` and ``fortunes-ru`` are
separate Polish and Russian collections). The selection rules, fixed so the text is
the same on every machine with the same packages:

- only the files in ``FORTUNE_FILES``; left out: the computing ones (computers,
  debian, knghtbrd, linux, linuxcookie, perl: the domain of man pages and
  LibreOffice help), ascii-art (pictures) and translate-me (mostly Latin);
- each entry normalized like corpus text (``lib.corpus.cleaning.normalize_text``);
  an entry that shares a run of ``OVERLAP_WORDS`` words with a target language's
  packaged fortunes is dropped (fortunes-pl's chat logs quote a few English fortunes);
- ``ENTRIES_PER_DOCUMENT`` consecutive entries of one file make a document, so the
  scored model sees some context, as in the multi-paragraph help files;
- ``general_english_texts(max_chars)`` visits the documents in the order of a hash of
  their id (``lib.corpus.select``), so a subset draws from many files, not the first.

Any stage can score it: ``general_english_texts(30_000)``.
"""

from __future__ import annotations

import re
from pathlib import Path

from lib.corpus.cleaning import normalize_text
from lib.corpus.parsers import fortune_entries
from lib.corpus.select import select_texts
from lib.corpus.sources import CorpusError, Document, SourceData, load_source, source_names
from lib.languages import TARGET_LANGUAGES

SOURCE = "english_general"  # Document.source, and the split name of its score rows
PACKAGES = ("fortunes-min", "fortunes")  # fortunes-min holds fortunes, literature, riddles
FORTUNES_DIR = "usr/share/games/fortunes"
FORTUNE_FILES = (
    "art", "cookie", "definitions", "disclaimer", "drugs", "education", "ethnic", "food", "fortunes",
    "goedel", "humorists", "kids", "law", "literature", "love", "magic", "medicine", "men-women",
    "miscellaneous", "news", "paradoxum", "people", "pets", "platitudes", "politics", "pratchett",
    "riddles", "science", "songs-poems", "sports", "startrek", "tao", "wisdom", "work", "zippy",
)
ENTRIES_PER_DOCUMENT = 10
OVERLAP_WORDS = 8  # long enough that a shared run is copied text, not a common phrase
_WORD = re.compile(r"\w+")


def word_runs(text: str, n: int = OVERLAP_WORDS) -> set[str]:
    """Every run of ``n`` consecutive words (lower-cased, punctuation ignored) in ``text``."""
    words = _WORD.findall(text.lower())
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def load_general_english() -> SourceData:
    """Every document of the general English text (packages fetched on first use, never installed)."""
    from lib.packages import debian_package

    roots = [debian_package(name) for name in PACKAGES]
    files = {path.name: path for root in roots for path in (root / FORTUNES_DIR).glob("*")
             if path.is_file() and not path.is_symlink()}
    missing = [name for name in FORTUNE_FILES if name not in files]
    if missing:
        raise CorpusError(f"Debian packages {', '.join(PACKAGES)} lack the fortune file(s) {', '.join(missing)} "
                          f"under {FORTUNES_DIR}; lib.corpus.general_english.FORTUNE_FILES names what it reads")
    quoted, quoting_packages = _target_fortune_runs()
    data = SourceData(packages=[_package_file(root) for root in roots] + quoting_packages)
    for name in FORTUNE_FILES:
        entries = [normalize_text(e) for e in fortune_entries(files[name].read_text(encoding="utf-8"))]
        entries = [e for e in entries if e and not word_runs(e) & quoted]
        for start in range(0, len(entries), ENTRIES_PER_DOCUMENT):
            group = f"{name}/{start // ENTRIES_PER_DOCUMENT}"
            text = "\n".join(entries[start:start + ENTRIES_PER_DOCUMENT])
            data.documents.append(Document(f"{SOURCE}:{group}", group, SOURCE, "en", text, name))
    return data


def general_english_texts(max_chars: int, seed: int = 0) -> list[str]:
    """A deterministic, file-mixed subset of about ``max_chars`` characters (0 = all of it)."""
    if max_chars < 0:
        raise CorpusError(f"max_chars must be >= 0 (0 = all), got {max_chars}")
    documents = load_general_english().documents
    return select_texts([d.text for d in documents], [d.id for d in documents], max_chars, seed)


def _target_fortune_runs() -> tuple[set[str], list[str]]:
    """The word runs of every target language's packaged fortunes, and the packages read.
    The other packaged target sources share no run with this text (tests/test_general_english.py)."""
    runs: set[str] = set()
    packages: list[str] = []
    for language in TARGET_LANGUAGES:
        if "fortunes" in source_names(language):
            data = load_source("fortunes", language)
            packages += data.packages
            for document in data.documents:
                runs |= word_runs(document.text)
    return runs, packages


def _package_file(root: Path) -> str:
    marker = root / ".package"  # the .deb file name, with its version (lib.packages)
    return marker.read_text().strip() if marker.is_file() else root.name
