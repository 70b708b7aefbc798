"""Before/after language-model scores as tidy rows: target test split and English.

The English rows measure forgetting: LAPT should move the target language
without wrecking the language the model was built for. Two English texts, told
apart by their split: ``test`` is the en corpus's test split (LibreOffice help,
the English side of text whose target side trains, so it also rewards the
domain), ``english_general`` is general English that no target corpus holds
(``lib.corpus.general_english``), the honest forgetting check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lib.corpus.general_english import SOURCE as ENGLISH_GENERAL
from lib.corpus.general_english import general_english_texts
from lib.corpus.select import select_texts, split_documents
from lib.lm_metrics import score_texts

METRICS = ("bits_per_char", "bits_per_byte", "perplexity")


@dataclass(frozen=True)
class EvalSet:
    language: str
    split: str
    texts: list[str]


def eval_sets(language: str, corpus_tag: str, *, test_max_chars: int, english_max_chars: int,
              english_corpus_tag: str = "", english_general_max_chars: int = 0) -> list[EvalSet]:
    """The target test subset, then (unless the target is English, or 0 chars asked for) the en
    corpus's test subset (split ``test``) and general English (split ``english_general``)."""
    texts, ids = split_documents(language, corpus_tag, "test")
    sets = [EvalSet(language, "test", select_texts(texts, ids, test_max_chars))]
    if language == "en":
        return sets
    if english_max_chars:
        en_texts, en_ids = split_documents("en", english_corpus_tag or corpus_tag, "test")
        sets.append(EvalSet("en", "test", select_texts(en_texts, en_ids, english_max_chars)))
    if english_general_max_chars:
        sets.append(EvalSet("en", ENGLISH_GENERAL, general_english_texts(english_general_max_chars)))
    return sets


def score_rows(model, tokenizer, sets: list[EvalSet], *, stage: str, labels: dict[str, Any],
               settings: dict[str, int], log=print) -> list[dict[str, Any]]:
    """One row per (evaluation set, metric): model, language, split, stage, metric, value, counts."""
    rows = []
    for item in sets:
        start = time.perf_counter()
        score = score_texts(model, tokenizer, item.texts, **settings)
        log(f"{stage:6s} {item.language}/{item.split}: {score.bits_per_char:.4f} bpc, "
            f"perplexity {score.perplexity:.2f} ({score.n_tokens} tokens, {time.perf_counter() - start:.0f} s)")
        common = {**labels, "language": item.language, "split": item.split, "stage": stage,
                  "n_chars": score.n_chars, "n_tokens": score.n_tokens}
        rows += [common | {"metric": m, "value": float(getattr(score, m))} for m in METRICS]
    return rows


def comparison(rows: list[dict[str, Any]]):
    """Before and after side by side, with the relative change, one line per split, language and metric."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    table = frame.pivot_table(index=["split", "language", "metric"], columns="stage", values="value",
                              aggfunc="first")
    table = table.reindex(columns=[c for c in ("before", "after") if c in table.columns])
    if {"before", "after"} <= set(table.columns):
        table["change_%"] = 100 * (table["after"] - table["before"]) / table["before"]
    return table
