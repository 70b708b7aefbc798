"""02_baseline_eval: bits per character, perplexity and fertility of a list of models on one
corpus split, in all and per source; the ``baseline_bpc`` figure."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.params import DEVICES, DTYPES, ParamsError, check_choice, check_language, check_positive

STAGE = "02_baseline_eval"
METRICS = ("bits_per_char", "bits_per_byte", "perplexity", "chars_per_token", "tokens_per_word")


@dataclass
class BaselineEvalParams:
    """02_baseline_eval: bits per character, perplexity and fertility of models."""

    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma3-270m"])
    language: str = "pl"  # the corpus language to evaluate on
    corpus_tag: str = "default"
    split: str = "test"  # train, validation or test
    max_chars: int = 60000  # characters of the split scored per model (0 = all)
    max_length: int = 1024  # tokens per window
    stride: int = 512  # new tokens per window
    batch_size: int = 8
    dtype: str = "float32"  # float32, bfloat16 or float16 (bf16 for 7B models on a GPU)
    device: str = "auto"  # auto (cuda when available), cpu or cuda
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    def validate(self) -> None:
        check_language(self.language)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("device", self.device, DEVICES)
        if not self.models:
            raise ParamsError("models must name at least one model")
        check_choice("split", self.split, ("train", "validation", "test"))
        check_positive("max_chars", self.max_chars, allow_zero=True)
        check_positive("max_length", self.max_length)
        check_positive("stride", self.stride)
        check_positive("batch_size", self.batch_size)
        if self.stride > self.max_length:
            raise ParamsError(f"stride ({self.stride}) must not exceed max_length ({self.max_length})")


Params = BaselineEvalParams


def score_models(params: BaselineEvalParams, log=print) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score every model on the same documents, in all and per source.

    Returns tidy rows (one per model, source and metric, with ``source='all'``
    for the whole selection; deterministic, so tables reproduce) and timings
    (which vary from run to run, so kept apart).
    """
    from lib.corpus import load_corpus
    from lib.corpus.select import select_indices
    from lib.lm_metrics import LMScore, score_texts
    from lib.models import device_name, load_model_and_tokenizer, resolve_device

    p = params
    data = load_corpus(p.language, p.corpus_tag)[p.split]
    by_source: dict[str, list[str]] = {}
    for i in select_indices(data["text"], data["id"], p.max_chars):
        by_source.setdefault(data[i]["source"], []).append(data[i]["text"])
    rows: list[dict[str, Any]] = []
    timings: dict[str, Any] = {"device": device_name()}
    for name in p.models:
        model, tokenizer = load_model_and_tokenizer(name, dtype=p.dtype, device=resolve_device(p.device))
        start = time.perf_counter()
        # Scores are sums, so the per-source scores add up to the whole.
        scores = {source: score_texts(model, tokenizer, texts, max_length=p.max_length, stride=p.stride,
                                      batch_size=p.batch_size)
                  for source, texts in sorted(by_source.items())}
        scores = {"all": LMScore.merge(*scores.values())} | scores
        seconds = time.perf_counter() - start
        log(f"{name} on {p.language}/{p.split}: {scores['all'].bits_per_char:.3f} bpc, "
            f"{scores['all'].n_tokens} tokens in {seconds:.1f} s")
        for source, score in scores.items():
            common = {"model": name, "language": p.language, "split": p.split, "source": source,
                      "n_chars": score.n_chars, "n_tokens": score.n_tokens, "n_docs": score.n_docs}
            rows += [common | {"metric": m, "value": float(getattr(score, m))} for m in METRICS]
        timings[name] = {"seconds": round(seconds, 2),
                         "tokens_per_second": round(scores["all"].n_tokens / seconds, 1)}
        del model
    return rows, timings


# ---------------------------------------------------------------- plots


def plot_baseline(table, title: str = "Baseline: packaged models on held-out target-language text"):
    """Bits per character and characters per token of each model, per language (whole selection)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if "source" in table.columns:
        table = table[table["source"] == "all"]
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = [("bits_per_char", "bits per character (lower is better)"),
              ("chars_per_token", "characters per token (higher = fewer tokens)")]
    for ax, (metric, heading) in zip(axes, panels):
        data = table[table["metric"] == metric]
        sns.barplot(data=data, x="language", y="value", hue="model", ax=ax,
                    order=sorted(data["language"].unique()), hue_order=sorted(data["model"].unique()))
        for container in ax.containers:
            ax.bar_label(container, fmt="%.2f", fontsize=8)
        ax.set_title(heading)
        ax.set_xlabel("language (test split)")
        ax.set_ylabel(metric)
    axes[1].get_legend().remove()
    sns.move_legend(axes[0], "upper center", bbox_to_anchor=(1.1, -0.18), ncol=4, title=None, frameon=False)
    fig.suptitle(title)
    return fig


def baseline_bpc_figure(results_dir: Path) -> Path:
    """results/tables/baseline.csv -> results/figures/baseline_bpc.png."""
    from lib.plotting import read_table, save

    table = read_table(results_dir, "baseline.csv")
    return save(plot_baseline(table[table["split"] == "test"]), results_dir, "baseline_bpc")


FIGURES = {"baseline_bpc": baseline_bpc_figure}
