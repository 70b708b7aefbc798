"""Corpus builder: packaged and user text sources, cleaning, deterministic splits.

    from lib.corpus import build_corpus, load_corpus
    build_corpus("pl")            # corpora_dir()/pl/default/
    load_corpus("pl")["train"]    # a datasets.Dataset
"""

from lib.corpus.build import (
    CorpusNotBuiltError,
    assign_split,
    build_corpus,
    check_build,
    corpus_path,
    load_corpus,
    load_manifest,
    load_pairs,
    load_stats,
)
from lib.corpus.sources import CorpusError, Document, Pair, WsdItem, rl_wsd_items, source_names

__all__ = [
    "CorpusError", "CorpusNotBuiltError", "Document", "Pair", "WsdItem", "assign_split", "build_corpus",
    "check_build", "corpus_path", "load_corpus", "load_manifest", "load_pairs", "load_stats", "rl_wsd_items",
    "source_names",
]
