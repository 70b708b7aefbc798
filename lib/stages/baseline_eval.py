"""02_baseline_eval: bits per character, perplexity and fertility of a list of models on one
corpus split, in all and per source; the ``baseline_bpc`` figure. ``labels`` names the models in
the rows (one per model, in order), so a run directory scored as a model appears by a name, not
its path; ``params.yaml`` records which model each label stands for."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.params import (
    DEVICES,
    DTYPES,
    ParamsError,
    check_choice,
    check_labels,
    check_language,
    check_positive,
    display_names,
)

STAGE = "02_baseline_eval"
METRICS = ("bits_per_char", "bits_per_byte", "perplexity", "chars_per_token", "tokens_per_word")


@dataclass
class BaselineEvalParams:
    """02_baseline_eval: bits per character, perplexity and fertility of models."""

    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma3-270m"])
    labels: list[str] = field(default_factory=list)  # names of the models in the rows, one per model (empty: as given)
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

    ADDED_LATER = ("labels",)  # at their defaults, left out of the run id (lib.runs.run_id)

    def validate(self) -> None:
        check_language(self.language)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("device", self.device, DEVICES)
        if not self.models:
            raise ParamsError("models must name at least one model")
        check_labels(self.labels, self.models)
        check_choice("split", self.split, ("train", "validation", "test"))
        check_positive("max_chars", self.max_chars, allow_zero=True)
        check_positive("max_length", self.max_length)
        check_positive("stride", self.stride)
        check_positive("batch_size", self.batch_size)
        if self.stride > self.max_length:
            raise ParamsError(f"stride ({self.stride}) must not exceed max_length ({self.max_length})")


Params = BaselineEvalParams


def score_models(params: BaselineEvalParams, log=print, cache_dir: str | Path | None = None,
                 ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score every model on the same documents, in all and per source.

    Returns tidy rows (one per model, source and metric, with ``source='all'``
    for the whole selection; deterministic, so tables reproduce) and timings
    (which vary from run to run, so kept apart). Rows and timings name each model by its
    label (``labels``), or as given when there are none.

    Every model spec is checked before the first model loads, so a misspelled name or an
    unreachable hub fails at once. Each finished model's rows are cached in
    ``cache_dir/scores/`` (default: the run directory, ``params.run_dir``, when set): a rerun
    of an interrupted or failed run scores only the models not finished yet. A model that
    fails to load or score does not stop the others; its error is raised after them.
    """
    from lib.corpus import load_corpus
    from lib.corpus.select import select_indices
    from lib.models import check_spec, device_name, resolve_device

    p = params
    for name in p.models:
        check_spec(name)
    device = resolve_device(p.device)
    data = load_corpus(p.language, p.corpus_tag)[p.split]
    by_source: dict[str, list[str]] = {}
    for i in select_indices(data["text"], data["id"], p.max_chars):
        by_source.setdefault(data[i]["source"], []).append(data[i]["text"])
    cache = Path(cache_dir) / SCORES_DIR if cache_dir else Path(p.run_dir) / SCORES_DIR if p.run_dir else None
    corpus = _corpus_fingerprint(p.language, p.corpus_tag)
    rows: list[dict[str, Any]] = []
    timings: dict[str, Any] = {"device": device_name()}
    failures: list[tuple[str, Exception]] = []
    finished: list[str] = []
    for name, shown in zip(p.models, display_names(p.models, p.labels)):
        key = _cache_key(p, name, device, corpus)
        cached = _read_cached(cache, name, key)
        if cached is not None:
            model_rows, timing = cached
            log(f"{name} on {p.language}/{p.split}: {_bpc(model_rows):.3f} bpc (finished earlier; "
                f"from {_cache_file(cache, name, key)})")
            timing = timing | {"cached": True}
        else:
            try:
                model_rows, timing = _score_one(p, name, device, by_source, log)
            except Exception as exc:  # noqa: BLE001  (the other models still score; raised below)
                log(f"{name}: failed ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
                    "going on with the other models")
                failures.append((name, exc))
                continue
            _write_cached(cache, name, key, model_rows, timing)
        rows += [row | {"model": shown} for row in model_rows]  # the cache keeps the model as given
        timings[shown] = timing
        finished.append(name)
    if failures:
        _raise_failures(failures, list(dict.fromkeys(finished)), cache)
    return rows, timings


SCORES_DIR = "scores"


def _score_one(p: BaselineEvalParams, name: str, device: str, by_source: dict[str, list[str]], log
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One model's rows (sources in sorted order after 'all', metrics in METRICS order) and timing."""
    from lib.lm_metrics import LMScore, score_texts
    from lib.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(name, dtype=p.dtype, device=device)
    start = time.perf_counter()
    # Scores are sums, so the per-source scores add up to the whole.
    scores = {source: score_texts(model, tokenizer, texts, max_length=p.max_length, stride=p.stride,
                                  batch_size=p.batch_size)
              for source, texts in sorted(by_source.items())}
    scores = {"all": LMScore.merge(*scores.values())} | scores
    seconds = time.perf_counter() - start
    del model
    log(f"{name} on {p.language}/{p.split}: {scores['all'].bits_per_char:.3f} bpc, "
        f"{scores['all'].n_tokens} tokens in {seconds:.1f} s")
    rows: list[dict[str, Any]] = []
    for source, score in scores.items():
        common = {"model": name, "language": p.language, "split": p.split, "source": source,
                  "n_chars": score.n_chars, "n_tokens": score.n_tokens, "n_docs": score.n_docs}
        rows += [common | {"metric": m, "value": float(getattr(score, m))} for m in METRICS]
    timing = {"seconds": round(seconds, 2),
              "tokens_per_second": round(scores["all"].n_tokens / seconds, 1) if seconds > 0 else None}
    return rows, timing


def _bpc(rows: list[dict[str, Any]]) -> float:
    return next(r["value"] for r in rows if r["source"] == "all" and r["metric"] == "bits_per_char")


def _corpus_fingerprint(language: str, tag: str) -> str:
    """Changes when the corpus is rebuilt (its manifest holds the build's parameters and time)."""
    from lib.corpus import corpus_path

    return hashlib.sha256((corpus_path(language, tag) / "manifest.json").read_bytes()).hexdigest()


def _model_fingerprint(spec: str) -> list:
    """The model's files (name, size, mtime): a retrained or reconverted checkpoint is scored anew."""
    from lib.models import REGISTRY, _checkpoint_dir, is_hub_id
    from lib.paths import models_dir

    if is_hub_id(spec):
        return [f"hub:{spec}"]
    path = models_dir() / spec if spec in REGISTRY else _checkpoint_dir(Path(spec).expanduser())
    if not path.is_dir():
        return []  # not converted yet: nothing can be cached for it either
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(path.iterdir())
            if f.is_file() and (f.suffix in (".safetensors", ".bin", ".json", ".model"))]


def _cache_key(p: BaselineEvalParams, name: str, device: str, corpus: str) -> dict[str, Any]:
    return {"model": name, "model_files": _model_fingerprint(name), "language": p.language,
            "corpus_tag": p.corpus_tag, "corpus_manifest_sha256": corpus, "split": p.split,
            "max_chars": p.max_chars, "max_length": p.max_length, "stride": p.stride,
            "batch_size": p.batch_size, "dtype": p.dtype, "device": device}


def _cache_file(cache: Path | None, name: str, key: dict[str, Any]) -> Path | None:
    if cache is None:
        return None
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[-60:] or "model"
    return cache / f"{slug}-{digest}.json"


def _read_cached(cache: Path | None, name: str, key: dict[str, Any]):
    path = _cache_file(cache, name, key)
    if path is None or not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if entry.get("key") != json.loads(json.dumps(key)) or not entry.get("rows"):
        return None
    return entry["rows"], entry.get("timing", {})


def _write_cached(cache: Path | None, name: str, key: dict[str, Any], rows: list[dict[str, Any]],
                  timing: dict[str, Any]) -> None:
    path = _cache_file(cache, name, key)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"key": key, "rows": rows, "timing": timing}, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)  # a killed write never leaves a half file under the final name


def _raise_failures(failures: list[tuple[str, Exception]], finished: list[str], cache: Path | None) -> None:
    from lib.models import ModelSpecError

    kept = (f"the scores of {', '.join(finished)} are kept in {cache}; run again to score only the rest"
            if finished and cache else
            f"{', '.join(finished)} scored" if finished else "no model scored")
    causes = "; ".join(f"{name}: {type(exc).__name__}: {' '.join(str(exc).split())}" for name, exc in failures)
    message = f"{len(failures)} of {len(failures) + len(finished)} models failed ({causes}); {kept}"
    first = failures[0][1]
    if all(isinstance(exc, ModelSpecError) for _, exc in failures):
        raise ModelSpecError(message) from first
    raise RuntimeError(message) from first


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
