"""01_prepare_data: the cleaned, deduplicated, split corpus of one language, and its stats.

The building work is ``lib.corpus``; this stage holds the notebook's parameters
and the one call that turns them into a corpus (the notebook and
``python -m lib prepare`` both use it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lib.params import ParamsError, check_fraction, check_language, check_positive

STAGE = "01_prepare_data"


@dataclass
class PrepareDataParams:
    """01_prepare_data: build the cleaned, split corpus of one language."""

    language: str = "pl"  # pl, tr, ru or en
    corpus_tag: str = "default"  # corpora live in <artifacts>/corpora/<language>/<corpus_tag>
    # packaged | a source name | local:PATH | hf:ID[:CONFIG] | speakleash:NAME
    sources: list[str] = field(default_factory=lambda: ["packaged"])
    seed: int = 1234  # split seed
    validation_fraction: float = 0.05
    test_fraction: float = 0.05
    min_chars: int = 200  # documents shorter than this are dropped
    near_dup_threshold: float = 0.8  # MinHash Jaccard above which documents are near-duplicates
    max_docs_per_source: int = 0  # 0 = all; small values make tiny test corpora
    tokenizers: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma3-270m"])
    text_field: str = "text"  # the text column of hf: and local: jsonl/parquet sources
    n_samples: int = 3  # documents shown per split
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    def validate(self) -> None:
        check_language(self.language)
        check_fraction("validation_fraction", self.validation_fraction)
        check_fraction("test_fraction", self.test_fraction)
        if self.validation_fraction + self.test_fraction >= 1:
            raise ParamsError("validation_fraction + test_fraction must be below 1")
        check_positive("min_chars", self.min_chars, allow_zero=True)
        check_positive("max_docs_per_source", self.max_docs_per_source, allow_zero=True)
        if not 0 < self.near_dup_threshold <= 1:
            raise ParamsError(f"near_dup_threshold must be in (0, 1], got {self.near_dup_threshold}")
        if not self.sources:
            raise ParamsError("sources must name at least one source")


Params = PrepareDataParams


def build(params: PrepareDataParams, *, force: bool = False) -> Path:
    """Build (or find, when the same build exists) the corpus these parameters describe."""
    from lib.corpus import build_corpus

    p = params
    return build_corpus(p.language, tag=p.corpus_tag, sources=p.sources, seed=p.seed,
                        validation_fraction=p.validation_fraction, test_fraction=p.test_fraction,
                        min_chars=p.min_chars, near_dup_threshold=p.near_dup_threshold,
                        max_docs_per_source=p.max_docs_per_source, tokenizers=p.tokenizers,
                        text_field=p.text_field, force=force)


FIGURES: dict = {}  # the corpus stats are tables; no results/ figure
