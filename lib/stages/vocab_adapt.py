"""04_vocab_adapt: a new tokenizer for one language, and the model's embeddings made to fit it.

The steps, which the notebook calls one by one::

    setup = prepare(params, run_dir)      # the old tokenizer, the texts; every check first
    new = build(setup)                    # the tokenizer, by a named strategy (lib.vocab)
    rows = measure(setup, new)            # chars/token, tokens/word, new-token share, round trip
    rows += adapt(setup, new)             # model: embeddings resized and initialised, bpc, saved

Strategies (``strategy``): ``bpe`` and ``unigram`` replace the vocabulary (LEP's BPE and
Unigram); ``extension`` appends the new BPE tokens missing from the old vocabulary (LEP's
Extended); ``optimization`` is extension cut back to ``target_size`` by dropping the least
used appended tokens on a mixed target-language and English sample (our reading of LEP's
Optimized, see ``lib.vocab.extend``); ``add_tokens`` adds the ``n_tokens`` most frequent new
tokens as added tokens (LlamaTurk's v). Initialisation (``init``): ``mean`` of the old rows
of the new token's text (LEP), ``random`` (LlamaTurk's untrained rows), ``mean_resize``
(transformers' ``resize_token_embeddings(mean_resizing=True)``).

``model`` is a model (registry name, run directory, checkpoint, hub id), or a paper's
tokenizer-only entry (``mistral-7b-v0.1``, ``llama-3``): then the run builds and measures
tokenizers only. With a model, ``<run>/model/`` is a standalone checkpoint with the new
tokenizer, so ``03_lapt`` (mode ``embeddings`` as LEP trains, or ``lora_embeddings``) and
every later stage name the run directory as their model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.params import DEVICES, ParamsError, check_choice, check_language, check_positive

STAGE = "04_vocab_adapt"
STRATEGY_FIELDS = {"vocab_size": "vocab_size", "min_frequency": "min_frequency", "target_size": "target_size",
                   "n_tokens": "n_tokens"}  # parameter -> the strategy's keyword


@dataclass
class VocabAdaptParams:
    """04_vocab_adapt: new tokenizer, new-token embeddings, measures."""

    model: str = "smollm2-135m-instruct"  # model spec, or a tokenizer-only entry: mistral-7b-v0.1, llama-3
    language: str = "ru"  # the language the new tokens are for: pl, tr or ru
    corpus_tag: str = "default"  # the corpus whose train split the tokenizer learns from
    english_corpus_tag: str = ""  # the English corpus (measures, optimization's sample); "" = corpus_tag
    strategy: str = "extension"  # bpe, unigram, extension, optimization or add_tokens
    vocab_size: int = 0  # size of the BPE/Unigram trained on the corpus (0 = the strategy's default)
    min_frequency: int = 0  # bpe, extension, optimization, add_tokens: pair count to merge (0 = default 2)
    target_size: int = 0  # optimization: the vocabulary after the cut (0 = old size + half the new)
    n_tokens: int = 0  # add_tokens: how many tokens are added (0 = default 1000)
    init: str = "mean"  # new rows: mean (of the old sub-token rows), random or mean_resize
    train_max_chars: int = 0  # characters of the train split the tokenizer learns from (0 = all)
    measure_max_chars: int = 0  # characters of each split that the measures read (0 = all)
    score_max_chars: int = 20000  # target test characters scored before and after the change (0 = none)
    eval_max_length: int = 1024  # tokens per scoring window
    eval_stride: int = 512  # new tokens per scoring window
    eval_batch_size: int = 8  # windows per scoring forward pass
    seed: int = 1234  # random initialisation
    device: str = "auto"  # auto, cpu or cuda (scoring)
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    accepts_tokenizer_only = True  # a class attribute, not a parameter: lib.preflight lets paper tokenizers in

    def validate(self) -> None:
        from lib.vocab import INITS, STRATEGIES

        check_language(self.language, ("pl", "tr", "ru"))
        check_choice("strategy", self.strategy, tuple(STRATEGIES))
        check_choice("init", self.init, INITS)
        check_choice("device", self.device, DEVICES)
        for key in (*STRATEGY_FIELDS, "train_max_chars", "measure_max_chars", "score_max_chars"):
            check_positive(key, getattr(self, key), allow_zero=True)
        for key in ("eval_max_length", "eval_stride", "eval_batch_size"):
            check_positive(key, getattr(self, key))
        if self.eval_stride > self.eval_max_length:
            raise ParamsError(f"eval_stride ({self.eval_stride}) must not exceed eval_max_length "
                              f"({self.eval_max_length})")
        if self.init == "mean_resize" and self.strategy in ("bpe", "unigram"):
            raise ParamsError(f"init mean_resize needs a strategy that appends tokens; {self.strategy} replaces "
                              "the vocabulary (use init mean or random)")

    def inapplicable(self) -> set[str]:
        """Strategy parameters the strategy does not take; model fields for a tokenizer-only entry."""
        from lib.vocab import PAPER_TOKENIZERS, strategy_params

        taken = set(strategy_params(self.strategy)) if self.strategy in _strategies() else set(STRATEGY_FIELDS)
        unused = {name for name, keyword in STRATEGY_FIELDS.items() if keyword not in taken}
        if self.model in PAPER_TOKENIZERS:
            unused |= {"init", "score_max_chars", "eval_max_length", "eval_stride", "eval_batch_size", "seed",
                       "device"}
        return unused

    def why_inapplicable(self) -> str:
        return f"strategy {self.strategy!r} with {self.model!r}"

    def strategy_kwargs(self) -> dict[str, int]:
        """The strategy's keywords that these parameters set (0 = its own default)."""
        return {keyword: getattr(self, name) for name, keyword in STRATEGY_FIELDS.items()
                if getattr(self, name) and name not in self.inapplicable()}


Params = VocabAdaptParams


def _strategies() -> tuple[str, ...]:
    from lib.vocab import STRATEGIES

    return tuple(STRATEGIES)


# ---------------------------------------------------------------- steps


@dataclass
class VocabSetup:
    params: VocabAdaptParams
    run_dir: Path
    old_tokenizer: Any
    train_texts: list[str]
    english_texts: list[str]
    splits: dict[tuple[str, str], list[str]]  # (language, split) -> texts the measures read
    has_model: bool
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        p = self.params
        return {"model": p.model, "language": p.language, "strategy": p.strategy,
                "strategy_params": p.strategy_kwargs(), "init": p.init if self.has_model else None,
                "old_vocab": len(self.old_tokenizer), "train_chars": sum(map(len, self.train_texts)),
                "english_chars": sum(map(len, self.english_texts)),
                "measured": {f"{lang}/{split}": sum(map(len, texts)) for (lang, split), texts in self.splits.items()},
                "notes": self.notes}


def prepare(params: VocabAdaptParams, run_dir: str | Path, log=print) -> VocabSetup:
    """The old tokenizer and the texts; nothing is trained yet."""
    from lib.corpus.select import select_texts, split_documents
    from lib.vocab import PAPER_TOKENIZERS
    from lib.vocab.paper_tokenizers import source_tokenizer

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    old = source_tokenizer(params.model)
    texts, ids = split_documents(params.language, params.corpus_tag, "train")
    train = select_texts(texts, ids, params.train_max_chars)
    en_tag = params.english_corpus_tag or params.corpus_tag
    en_texts, en_ids = split_documents("en", en_tag, "train")
    english = select_texts(en_texts, en_ids, params.train_max_chars)
    splits = {}
    for language, tag, split in ((params.language, params.corpus_tag, "train"),
                                 (params.language, params.corpus_tag, "validation"),
                                 (params.language, params.corpus_tag, "test"), ("en", en_tag, "test")):
        split_texts, split_ids = split_documents(language, tag, split)
        splits[(language, split)] = select_texts(split_texts, split_ids, params.measure_max_chars)
    setup = VocabSetup(params, run_dir, old, train, english, splits, params.model not in PAPER_TOKENIZERS)
    log(f"{params.model}: {len(old)} tokens; {params.strategy} on {sum(map(len, train)):,} {params.language} "
        f"characters")
    return setup


def build(setup: VocabSetup, log=print):
    """The new tokenizer (saved to ``<run>/tokenizer``)."""
    from lib.vocab import build_tokenizer, save_tokenizer

    p = setup.params
    start = time.perf_counter()
    new = build_tokenizer(setup.old_tokenizer, setup.train_texts, p.strategy, english_texts=setup.english_texts,
                          **p.strategy_kwargs())
    save_tokenizer(new, setup.run_dir / "tokenizer", _provenance(setup, new))
    log(f"{p.strategy}: {len(setup.old_tokenizer)} -> {len(new)} tokens in {time.perf_counter() - start:.0f} s")
    return new


def measure(setup: VocabSetup, new_tokenizer) -> list[dict[str, Any]]:
    """Per (tokenizer, language, split): chars/token, tokens/word, new-token shares, round trip."""
    from lib.vocab import tokenizer_measures

    rows = []
    for name, tokenizer in (("original", setup.old_tokenizer), (setup.params.strategy, new_tokenizer)):
        for (language, split), texts in setup.splits.items():
            values = tokenizer_measures(tokenizer, texts, old_tokenizer=setup.old_tokenizer)
            common = _labels(setup) | {"tokenizer": name, "language": language, "split": split,
                                       "n_chars": values["n_chars"], "vocab_size": values["vocab_size"]}
            rows += [common | {"metric": metric, "value": values[metric]}
                     for metric in ("chars_per_token", "tokens_per_word", "new_token_char_share", "round_trip_rate")
                     if values[metric] is not None]
    return rows


def adapt(setup: VocabSetup, new_tokenizer, log=print) -> list[dict[str, Any]]:
    """Resize and initialise the embeddings, score before and after, save ``<run>/model``."""
    if not setup.has_model:
        return []
    from lib.lm_metrics import score_texts
    from lib.models import load_model, resolve_device
    from lib.vocab import adapt_model, save_checkpoint

    p = setup.params
    device = resolve_device(p.device)
    model = load_model(p.model, dtype="float32", device=device)
    test = _head_chars(setup.splits[(p.language, "test")], p.score_max_chars)
    settings = {"max_length": p.eval_max_length, "stride": p.eval_stride, "batch_size": p.eval_batch_size}
    rows = []
    if test:
        before = score_texts(model, setup.old_tokenizer, test, **settings)
        rows.append(_bpc_row(setup, "original", before))
    adapt_model(model, setup.old_tokenizer, new_tokenizer, init=p.init, seed=p.seed)
    if test:
        after = score_texts(model, new_tokenizer, test, **settings)
        rows.append(_bpc_row(setup, f"{p.strategy} ({p.init})", after))
        log(f"{p.language} test bpc: {before.bits_per_char:.3f} -> {after.bits_per_char:.3f} right after the change "
            f"({p.init} initialisation, no training)")
    out = save_checkpoint(model.to("cpu"), new_tokenizer, setup.run_dir / "model", _provenance(setup, new_tokenizer))
    log(f"standalone checkpoint: {out}")
    return rows


def _bpc_row(setup: VocabSetup, tokenizer: str, score) -> dict[str, Any]:
    return _labels(setup) | {"tokenizer": tokenizer, "language": setup.params.language, "split": "test",
                             "n_chars": score.n_chars, "n_tokens": score.n_tokens, "metric": "bits_per_char",
                             "value": float(score.bits_per_char)}


def _labels(setup: VocabSetup) -> dict[str, Any]:
    p = setup.params
    return {"model": p.model, "strategy": p.strategy, "init": p.init if setup.has_model else None}


def _provenance(setup: VocabSetup, new_tokenizer) -> dict[str, Any]:
    """What 07_lep_propagate checks a donor by: the old and new vocabulary sizes, the strategy."""
    from lib.params import as_dict

    p = setup.params
    return {"stage": STAGE, "base_model": p.model, "strategy": p.strategy, "init": p.init,
            "old_vocab": len(setup.old_tokenizer), "vocab_size": len(new_tokenizer),
            "params": {k: v for k, v in as_dict(p).items() if k != "run_dir"}, "run_dir": str(setup.run_dir)}


def _head_chars(texts: list[str], max_chars: int) -> list[str]:
    """The first documents up to ``max_chars`` characters (0 = none scored)."""
    out, total = [], 0
    for text in texts:
        if total >= max_chars:
            break
        out.append(text)
        total += len(text)
    return out


# ---------------------------------------------------------------- plots


def plot_tokenizers(table, title: str = "Characters per token (higher = fewer tokens per text)",
                    splits: tuple[str, ...] = ("train", "validation", "test"),
                    paper: dict[str, dict[str, float | None]] | None = None, paper_language: str = "ru"):
    """Characters per token of each tokenizer on each measured split, original against new.
    ``paper``: model -> tokenizer -> a published figure, drawn as a black bar on that
    model's ``paper_language``/test bar (None = not reported)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = table[(table["metric"] == "chars_per_token") & table["split"].isin(splits)].copy()
    data["text"] = data["language"] + "/" + data["split"]
    sns.set_theme(style="whitegrid", context="notebook")
    models = sorted(data["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4.2), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        part = data[data["model"] == model]
        order = ["original"] + sorted(t for t in part["tokenizer"].unique() if t != "original")
        texts = sorted(part["text"].unique())
        sns.barplot(data=part, x="text", y="value", hue="tokenizer", hue_order=order, ax=ax, order=texts)
        for container in ax.containers:
            ax.bar_label(container, fmt="%.2f", fontsize=7)
        published = (paper or {}).get(model, {})
        target = f"{paper_language}/test"
        for tokenizer, container in zip(order, ax.containers):
            value = published.get(tokenizer)
            if value is None or target not in texts:
                continue
            bar = container.patches[texts.index(target)]
            ax.hlines(value, bar.get_x(), bar.get_x() + bar.get_width(), colors="black", linewidth=2.5,
                      label="paper" if "paper" not in ax.get_legend_handles_labels()[1] else None)
        ax.set_title(model)
        ax.set_xlabel("text (language/split)")
        ax.set_ylabel("characters per token")
    # one legend below the panels: inside an axis it covers bars
    handles, labels = {}, []
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.legend([handles[label] for label in labels], labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def paper_chars_per_token() -> dict[str, dict[str, float | None]]:
    """The LEP paper's Russian characters per token (params/papers/lep.yaml)."""
    from lib.params import load_yaml
    from lib.paths import PARAMS_DIR

    path = PARAMS_DIR / "papers" / "lep.yaml"
    return load_yaml(path.read_text(encoding="utf-8"), str(path))["russian_chars_per_token"]


def lep_tokenizers_figure(results_dir: Path, name: str = "lep_tokenizers") -> Path:
    """results/tables/<name>.csv -> results/figures/<name>.png (test splits; the paper's Russian
    figures as black bars)."""
    from lib.plotting import read_table, save

    table = read_table(results_dir, f"{name}.csv")
    fig = plot_tokenizers(table, "LEP tokenizers: characters per token on the test splits (black: the paper, ru)",
                          splits=("test",), paper=paper_chars_per_token())
    return save(fig, results_dir, name)


def lep_tokenizers_paper_figure(results_dir: Path) -> Path:
    """The paper's own tokenizers only (lep_tokenizers_paper.yaml, the tokenizer half of reproduce lep)."""
    return lep_tokenizers_figure(results_dir, "lep_tokenizers_paper")


FIGURES = {"lep_tokenizers": lep_tokenizers_figure, "lep_tokenizers_paper": lep_tokenizers_paper_figure}
