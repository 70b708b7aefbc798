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
        for key in ("validation_fraction", "test_fraction"):  # 0: no such split (build_corpus allows it)
            value = getattr(self, key)
            if value != 0:
                check_fraction(key, value)
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
    """Build the corpus these parameters describe, or return the existing build made with them.

    An existing build under the same ``corpus_tag`` made with other parameters is a
    CorpusError naming them (rebuild with ``force=True`` / ``prepare --force``, or use
    another tag): a run's parameters always describe the corpus it produced.
    """
    from lib.corpus import build_corpus

    return build_corpus(params.language, **_corpus_arguments(params), force=force)


def check(params: PrepareDataParams, *, force: bool = False) -> Path | None:
    """What ``build`` would refuse, in seconds and without building: bad parameters, an existing
    build with other parameters, an unwritable corpus directory. Returns the build it would reuse
    (None: it would build). For checks before a run or sweep starts."""
    from lib.corpus import check_build

    return check_build(params.language, **_corpus_arguments(params), force=force)


def _corpus_arguments(p: PrepareDataParams) -> dict:
    return dict(tag=p.corpus_tag, sources=p.sources, seed=p.seed, validation_fraction=p.validation_fraction,
                test_fraction=p.test_fraction, min_chars=p.min_chars, near_dup_threshold=p.near_dup_threshold,
                max_docs_per_source=p.max_docs_per_source, tokenizers=p.tokenizers, text_field=p.text_field)


FIGURES: dict = {}  # the corpus stats are tables; no results/ figure
