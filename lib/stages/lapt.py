"""03_lapt: language-adaptive pre-training (continued pre-training on raw text).

Any registry model (or run directory, local checkpoint, hub id), any corpus
language, five training modes (see ``lib.training.modes``). The steps, which
the notebook calls one by one and ``scripts/train_lapt.py`` runs in a row::

    setup = prepare(params, run_dir)        # every check, before any training
    before = score_before(setup)            # target test split + two English texts, base model
    outcome = train(setup)                  # SFTTrainer, packed blocks, resumes a killed run
    after, check = finish(setup, outcome)   # merged checkpoint in <run_dir>/model, rescored

The run directory then holds: ``model/`` (standalone checkpoint with its
tokenizer: later stages name the run directory as a model), ``adapter/`` (LoRA
modes), ``checkpoints/`` (trainer state, for resume), ``tb/`` (TensorBoard),
``train_log.csv``, ``lapt_params.json`` (the resolved parameters).
"""

from __future__ import annotations

import json
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.corpus.general_english import SOURCE as ENGLISH_GENERAL
from lib.models import free_memory
from lib.params import DEVICES, ParamsError, as_dict, check_choice, check_language, check_positive
from lib.training.arguments import check_train_fields
from lib.training.lora import LORA_FIELDS, check_lora_fields, lora_settings
from lib.training.modes import LORA_MODES, MODES

STAGE = "03_lapt"
# what 03 trains on: the corpus's train documents, its aligned English<->target train pairs (parallel
# text: both languages in one context, each pair a document), or both, mixed by the corpus's hash order
TRAIN_TEXTS = ("corpus", "pairs", "corpus+pairs")


@dataclass
class LaptParams:
    """03_lapt: continued pre-training of one model on one language's corpus."""

    model: str = "smollm2-135m-instruct"  # registry name, run directory, local checkpoint or hub id
    language: str = "pl"  # the corpus language to adapt to: pl, tr, ru or en
    corpus_tag: str = "default"  # which build of the corpus (01_prepare_data's corpus_tag)
    train_text: str = "corpus"  # corpus (train documents), pairs (aligned en<->target train pairs) or corpus+pairs
    mode: str = "lora"  # lora, qlora (CUDA only), lora_embeddings, embeddings, new_tokens (a 04 run's new rows) or full
    lora_r: int | None = None  # LoRA rank; None = 32 in LoRA modes, and must stay None in others
    lora_alpha: int | None = None  # LoRA scale is alpha / r; None = 16
    lora_dropout: float | None = None  # dropout on the LoRA input; None = 0.05
    lora_target_modules: list[str] | None = None  # module names or [all-linear]; None = all-linear
    learning_rate: float = 3e-3  # peak rate, reached after warmup
    lr_scheduler: str = "cosine"  # decay after warmup: cosine, linear or constant_with_warmup
    warmup_ratio: float = 0.05  # fraction of the steps spent in linear warmup
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # gradient clipping
    block_size: int = 256  # tokens per packed training block
    batch_size: int = 8  # blocks per device per micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    max_steps: int = 0  # optimizer steps; 0 = num_epochs passes over the training tokens
    num_epochs: float = 1.0  # passes over the training tokens when max_steps is 0
    max_train_tokens: int = 120_000  # tokens taken from the train split, source-mixed (0 = all)
    max_train_chars: int = 0  # also stop at this many characters (0 = no limit): equal text for two tokenizers
    precision: str = "auto"  # auto (bf16 where the hardware supports it), bf16 or fp32
    gradient_checkpointing: bool = False  # recompute activations: less memory, ~30% slower
    eval_steps: int = 20  # validation bpc every N optimizer steps (0 = only before/after)
    val_max_chars: int = 12000  # characters of the validation split scored at each evaluation
    save_steps: int = 20  # checkpoint every N optimizer steps (0 = none, so no resume)
    save_total_limit: int = 2  # checkpoints kept on disk
    log_steps: int = 10  # training loss logged every N optimizer steps
    test_max_chars: int = 60000  # characters of the target test split scored before and after
    english_max_chars: int = 30000  # characters of the en corpus test split (LibreOffice help: in-domain) (0 = skip)
    english_corpus_tag: str = ""  # corpus_tag of the English corpus ("" = corpus_tag)
    english_general_max_chars: int = 0  # characters of general English (Debian fortunes), for forgetting (0 = skip)
    eval_max_length: int = 1024  # tokens per scoring window
    eval_stride: int = 512  # new tokens per scoring window
    eval_batch_size: int = 8  # windows per scoring forward pass
    seed: int = 1234  # data order, adapter initialisation, dropout
    device: str = "auto"  # auto (cuda when available), cpu or cuda
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    # at their defaults, left out of the run id (lib.runs.run_id), so finished runs keep their ids
    ADDED_LATER = ("max_train_chars", "english_general_max_chars", "train_text")

    def validate(self) -> None:
        check_language(self.language)
        check_choice("mode", self.mode, MODES)
        check_choice("train_text", self.train_text, TRAIN_TEXTS)
        check_choice("device", self.device, DEVICES)
        check_train_fields(self)
        check_lora_fields(self)
        if self.mode == "qlora" and self.device == "cpu":
            raise ParamsError("mode qlora needs a CUDA GPU (bitsandbytes 4-bit NF4); on a CPU use mode lora")
        if self.mode == "new_tokens" and self.weight_decay:
            raise ParamsError("weight_decay must be 0 with mode new_tokens: AdamW's decay would move the frozen "
                              f"rows too (got {self.weight_decay})")
        if self.block_size < 2:
            raise ParamsError(f"block_size must be at least 2 tokens, got {self.block_size}")
        for key in ("eval_max_length", "eval_stride", "eval_batch_size"):
            check_positive(key, getattr(self, key))
        for key in ("max_train_tokens", "max_train_chars", "val_max_chars", "test_max_chars",
                    "english_max_chars", "english_general_max_chars"):
            check_positive(key, getattr(self, key), allow_zero=True)
        if self.eval_stride > self.eval_max_length:
            raise ParamsError(f"eval_stride ({self.eval_stride}) must not exceed eval_max_length "
                              f"({self.eval_max_length})")

    def inapplicable(self) -> set[str]:
        """lora_* fields mean nothing to a mode that trains no adapter."""
        return set() if self.mode in LORA_MODES else set(LORA_FIELDS)

    def why_inapplicable(self) -> str:
        return f"mode {self.mode!r}, which trains no LoRA adapter (LoRA modes: {', '.join(LORA_MODES)})"

    def lora_settings(self) -> dict[str, Any] | None:
        """r, alpha, dropout, target_modules with the Curie defaults filled in (None outside LoRA modes)."""
        return lora_settings(self, LORA_MODES)


Params = LaptParams


# ---------------------------------------------------------------- steps


@dataclass
class LaptSetup:
    """Everything checked and loaded; nothing trained yet."""

    params: Any
    run_dir: Path
    device: str
    precision: str
    world_size: int
    tokenizer: Any
    trainable: Any  # lib.training.modes.TrainableModel
    train_dataset: Any
    train_stats: Any  # lib.training.data.TokenStats
    val_texts: list[str]
    eval_sets: list[Any]  # lib.training.scoring.EvalSet, target first
    planned_steps: int
    notes: list[str] = field(default_factory=list)

    @property
    def score_settings(self) -> dict[str, int]:
        p = self.params
        return {"max_length": p.eval_max_length, "stride": p.eval_stride, "batch_size": p.eval_batch_size}

    @property
    def labels(self) -> dict[str, Any]:
        return {"model": self.params.model, "adapted_to": self.params.language, "mode": self.params.mode}

    def summary(self) -> dict[str, Any]:
        p = self.params
        return {
            "model": p.model, "mode": p.mode, "language": p.language, "train_text": p.train_text,
            "device": self.device, "precision": self.precision, "world_size": self.world_size,
            "lora": p.lora_settings(), "tied_embeddings": self.trainable.tied_embeddings,
            "train_docs": self.train_stats.n_docs, "train_tokens": self.train_stats.n_tokens,
            "train_chars": self.train_stats.n_chars, "block_size": p.block_size,
            "tokens_per_step": p.block_size * p.batch_size * p.grad_accum * self.world_size,
            "planned_steps": self.planned_steps,
            "val_chars": sum(len(t) for t in self.val_texts),
            "eval_chars": {f"{s.language}/{s.split}": sum(len(t) for t in s.texts) for s in self.eval_sets},
            "notes": self.notes + self.trainable.notes,
        }


def prepare(params, run_dir: str | Path, log=print) -> LaptSetup:
    """Check everything that can be checked and load data and model; raise before any training."""
    from accelerate import PartialState

    from lib.corpus.select import select_indices, select_texts, split_documents
    from lib.models import check_compatible, check_context, load_tokenizer, resolve_device
    from lib.training import data as D
    from lib.training import modes as M
    from lib.training.scoring import eval_sets
    from lib.training.trainer import planned_steps

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(params.device)
    M.check_hardware(params.mode, device)  # QLoRA on a CPU stops here, before any loading
    precision = M.resolve_precision(params.precision, device)
    check_context(params.model, block_size=params.block_size, eval_max_length=params.eval_max_length)
    tokenizer = load_tokenizer(params.model)
    new_rows = added_token_ids(params.model, tokenizer) if params.mode == "new_tokens" else None

    texts, ids = train_documents(params)
    sequences, stats = D.training_sequences(tokenizer, texts, ids, max_tokens=params.max_train_tokens,
                                            max_chars=params.max_train_chars, seed=params.seed)
    D.check_enough_tokens(stats, params.block_size, f"the {params.language}/{params.corpus_tag} train "
                          + ("split" if params.train_text == "corpus" else f"text ({params.train_text})"))
    val_texts: list[str] = []
    if params.eval_steps:
        v_texts, v_ids = split_documents(params.language, params.corpus_tag, "validation")
        val_texts = select_texts(v_texts, v_ids, params.val_max_chars)
    with PartialState().local_main_process_first():  # general English may fetch packages: one at a time
        sets = eval_sets(params.language, params.corpus_tag, test_max_chars=params.test_max_chars,
                         english_max_chars=params.english_max_chars, english_corpus_tag=params.english_corpus_tag,
                         english_general_max_chars=params.english_general_max_chars)

    trainable = M.load_trainable(params.model, params.mode, lora=params.lora_settings(), device=device,
                                 precision=precision, gradient_checkpointing=params.gradient_checkpointing,
                                 token_indices=new_rows)
    check_compatible(trainable.model, tokenizer, params.model)
    world = PartialState().num_processes
    steps = planned_steps(stats.n_tokens, params.block_size, params.batch_size, params.grad_accum, world,
                          params.max_steps, params.num_epochs)
    notes = []
    if device == "cpu" and precision == "bf16":
        notes.append("bf16 autocast on a CPU with native bfloat16 (AMX/AVX512-BF16); weights stay float32")
    if "pairs" in params.train_text:
        kept = [ids[i] for i in select_indices(texts, ids, 0, seed=params.seed)][:stats.n_docs]
        notes.append(f"train_text {params.train_text}: {sum(i.startswith('pairs:') for i in kept)} of the "
                     f"{stats.n_docs} training documents are aligned en<->{params.language} pairs")
    setup = LaptSetup(params, run_dir, device, precision, world, tokenizer, trainable,
                      D.token_dataset(sequences), stats, val_texts, sets, steps, notes)
    if PartialState().is_main_process:
        _record_params(setup, log)
    PartialState().wait_for_everyone()
    log(f"{params.model} [{params.mode}] on {params.language}: {stats.n_tokens} training tokens "
        f"({stats.n_docs} documents), ~{steps} steps of {setup.summary()['tokens_per_step']} tokens, "
        f"{device}/{precision}")
    return setup


def train_documents(params) -> tuple[list[str], list[str]]:
    """Texts and ids of what ``params.train_text`` names; ``training_sequences`` then mixes them by
    the hash of their ids and cuts them at the token or character budget."""
    from lib.corpus.select import pair_documents, split_documents

    texts: list[str] = []
    ids: list[str] = []
    for part in params.train_text.split("+"):
        if part == "corpus":
            more = split_documents(params.language, params.corpus_tag, "train")
        else:
            more = pair_documents(params.language, params.corpus_tag, "train", seed=params.seed)
        texts += more[0]
        ids += more[1]
    return texts, ids


def added_token_ids(model: str, tokenizer) -> list[int]:
    """The rows mode new_tokens trains: the tokens of ``model``'s vocabulary that its 04_vocab_adapt run
    added to the base's (by token string, so a replaced vocabulary's shared tokens stay frozen too)."""
    from lib.models import load_tokenizer
    from lib.vocab import new_token_ids, vocabulary_provenance

    base = vocabulary_provenance(model).get("base_model")
    if not base:
        raise ParamsError(f"mode new_tokens trains the rows a vocabulary change added, so model must be a "
                          f"04_vocab_adapt run (or a run trained from one); {model!r} is not")
    ids = sorted(new_token_ids(tokenizer, load_tokenizer(base)))
    if not ids:
        raise ParamsError(f"mode new_tokens: {model!r} has no token that its base {base!r} lacks")
    return ids


def score_before(setup: LaptSetup, log=print) -> list[dict[str, Any]]:
    """The base model's scores (cached in the run directory, so a resumed run does not redo them)."""
    from lib.models import load_model
    from lib.training.scoring import score_rows

    cache = setup.run_dir / "scores_before.json"
    key = {"model": setup.params.model, **setup.score_settings,
           "sets": {f"{s.language}/{s.split}": [len(s.texts), sum(map(len, s.texts))] for s in setup.eval_sets}}
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            log("before: cached scores of the base model")
            return stored["rows"]
    import torch

    base = setup.trainable.model
    if setup.trainable.mode != "qlora" and base.dtype == torch.float32:
        model = base.to(setup.device)  # the not-yet-wrapped base itself: no second copy in memory
    else:
        model = load_model(setup.params.model, dtype="float32", device=setup.device)
    rows = score_rows(model, setup.tokenizer, setup.eval_sets, stage="before", labels=setup.labels,
                      settings=setup.score_settings, log=log)
    cache.write_text(json.dumps({"key": key, "rows": rows}, indent=2) + "\n")
    return rows


@dataclass
class TrainOutcome:
    trainer: Any
    resumed_from: str | None
    train_metrics: dict[str, Any]
    history: Any  # pandas.DataFrame: one row per logged step


def train(setup: LaptSetup, callbacks: list | tuple = (), log=print) -> TrainOutcome:
    """Train with SFTTrainer; resume from the run directory's last checkpoint when there is one."""
    from lib.training.arguments import TrainSettings
    from lib.training.data import document_token_ids, token_dataset
    from lib.training.modes import parameter_counts
    from lib.training.trainer import (
        BpcTrainer,
        finished_checkpoint,
        history_table,
        last_checkpoint,
        load_finished,
        packed_text_arguments,
        tensorboard_callback,
        use_fused_lm_head,
    )

    p = setup.params
    checkpoints = setup.run_dir / "checkpoints"
    resume = last_checkpoint(checkpoints)
    if resume:
        log(f"resuming from {resume}")
    config = packed_text_arguments(TrainSettings.of(p), output_dir=checkpoints, block_size=p.block_size,
                                   precision=setup.precision, device=setup.device,
                                   eval_on_start=resume is None)
    # The Trainer insists on an eval dataset when it evaluates; BpcTrainer.evaluate scores
    # setup.val_texts by characters instead of these tokens.
    eval_dataset = token_dataset(document_token_ids(setup.tokenizer, setup.val_texts)) if p.eval_steps else None
    trainer = BpcTrainer(
        model=setup.trainable.model, args=config, train_dataset=setup.train_dataset,
        eval_dataset=eval_dataset, processing_class=setup.tokenizer,
        peft_config=setup.trainable.peft_config,
        callbacks=[tensorboard_callback(setup.run_dir / "tb"), *callbacks],
        bpc_texts=setup.val_texts, bpc_settings=setup.score_settings,
        fused_lm_head=use_fused_lm_head(setup.device),
    )
    counts = parameter_counts(trainer.model)
    log(f"trainable parameters: {counts['trainable_params']:,} of {counts['total_params']:,} "
        f"({100 * counts['trainable_fraction']:.2f}%)")
    # read now: the trainer rotates old checkpoints away (save_total_limit) while it trains
    tokens_before = _tokens_at(resume) if resume else 0
    start = time.perf_counter()
    if finished_checkpoint(resume):
        log(f"{Path(resume).name} is the last step: training had finished, loading it")
        load_finished(trainer, resume)
        train_metrics: dict[str, Any] = {}
    else:
        train_metrics = trainer.train(resume_from_checkpoint=resume).metrics
    wall = time.perf_counter() - start
    trainer.save_state()  # trainer_state.json (log history, steps) next to the checkpoints
    if setup.trainable.peft_config is not None:
        trainer.save_model(str(setup.run_dir / "adapter"))
    history = history_table(trainer.state.log_history)
    if trainer.is_world_process_zero():
        history.to_csv(setup.run_dir / "train_log.csv", index=False)
    tokens = trainer.state.num_input_tokens_seen
    metrics = {**train_metrics, **counts, "wall_seconds": round(wall, 1), "global_step": trainer.state.global_step,
               "tokens_seen": tokens}
    if train_metrics.get("train_runtime"):
        new_tokens = tokens - tokens_before
        metrics["tokens_per_second"] = round(new_tokens / train_metrics["train_runtime"], 1)
    log(f"trained {trainer.state.global_step} steps, {tokens} tokens in {wall:.0f} s"
        + (f" (resumed from {Path(resume).name})" if resume else ""))
    return TrainOutcome(trainer, resume, metrics, history)


def finish(setup: LaptSetup, outcome: TrainOutcome, log=print) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Write the standalone checkpoint to <run_dir>/model, score it, check it against the trained model.

    Returns the 'after' rows (test splits) plus the validation curve's two ends
    (split 'validation': step 0 as 'before', the last evaluation as 'after').
    """
    from lib.lm_metrics import score_texts
    from lib.models import load_model_and_tokenizer
    from lib.training.modes import export_checkpoint
    from lib.training.scoring import score_rows
    from lib.training.trainer import without_autocast

    trained = outcome.trainer.model
    target = setup.eval_sets[0]
    # The trained-vs-reloaded check runs on the validation subset when there is one: a fifth of
    # the test text, so it costs seconds instead of a minute, and any mismatch shows on any text.
    check_split, check_texts = ("validation", setup.val_texts) if setup.val_texts else ("test", target.texts)
    with without_autocast(trained) as model:
        in_memory = score_texts(model, setup.tokenizer, check_texts, **setup.score_settings)
    p = setup.params
    out = export_checkpoint(
        trained, base_spec=p.model, mode=p.mode, adapter_dir=setup.run_dir / "adapter",
        out_dir=setup.run_dir / "model", tokenizer=setup.tokenizer,
        provenance={"stage": STAGE, "base_model": p.model, "mode": p.mode, "language": p.language,
                    "corpus_tag": p.corpus_tag, "lora": p.lora_settings(), "run_dir": str(setup.run_dir)})
    log(f"standalone checkpoint: {out}")
    # let the trained copy go before the merged one is loaded (a 7B model on one GPU)
    outcome.trainer = setup.trainable.model = None
    del trained, model
    free_memory()
    merged, tokenizer = load_model_and_tokenizer(str(out), device=setup.device)
    rows = score_rows(merged, tokenizer, setup.eval_sets, stage="after", labels=setup.labels,
                      settings=setup.score_settings, log=log)
    if check_split == "test":
        merged_bpc = next(r["value"] for r in rows
                          if r["language"] == target.language and r["metric"] == "bits_per_char")
    else:
        merged_bpc = score_texts(merged, tokenizer, check_texts, **setup.score_settings).bits_per_char
    check = {"text": f"{target.language}/{check_split}", "n_chars": sum(map(len, check_texts)),
             "trained_model_bpc": in_memory.bits_per_char, "reloaded_checkpoint_bpc": merged_bpc,
             "abs_diff": abs(in_memory.bits_per_char - merged_bpc)}
    check["within_1e-3"] = check["abs_diff"] <= 1e-3
    rows += validation_rows(setup, outcome.history)
    log(f"checkpoint check on {check['text']}: trained {check['trained_model_bpc']:.5f} bpc, "
        f"reloaded {merged_bpc:.5f} bpc (|diff| {check['abs_diff']:.1e})")
    return rows, check


def validation_rows(setup: LaptSetup, history) -> list[dict[str, Any]]:
    """The validation curve's ends as rows: step 0 (the base model) is 'before', the last step 'after'."""
    if history is None or "eval_bpc" not in history:
        return []
    evals = history.dropna(subset=["eval_bpc"]).sort_values("step")
    if evals.empty or evals["step"].iloc[0] != 0:
        return []
    common = {**setup.labels, "language": setup.params.language, "split": "validation",
              "n_chars": sum(len(t) for t in setup.val_texts)}
    rows = []
    for stage, row in (("before", evals.iloc[0]), ("after", evals.iloc[-1])):
        rows += [common | {"stage": stage, "step": int(row["step"]), "metric": metric,
                           "value": float(row[column])}
                 for metric, column in (("bits_per_char", "eval_bpc"), ("perplexity", "eval_perplexity"))]
    return rows


def run_lapt(params, run_dir: str | Path, callbacks: list | tuple = (),
             log=print) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All steps; under ``accelerate launch`` scoring and export run on the main process only."""
    from accelerate import PartialState

    state = PartialState()
    main = state.is_main_process
    start = time.perf_counter()
    setup = prepare(params, run_dir, log=log if main else _quiet)
    before = score_before(setup, log=log) if main else []
    state.wait_for_everyone()
    outcome = train(setup, callbacks, log=log if main else _quiet)
    after, check = finish(setup, outcome, log=log) if main else ([], {})
    state.wait_for_everyone()
    summary = {"setup": setup.summary(), "train": outcome.train_metrics, "resumed_from": outcome.resumed_from,
               "checkpoint_check": check, "wall_seconds": round(time.perf_counter() - start, 1)}
    return before + after, summary


def _tokens_at(checkpoint: str) -> int:
    """Tokens already trained when ``checkpoint`` was written (for the throughput of a resumed run)."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return int(state.get("num_input_tokens_seen", 0))


def _quiet(*_args, **_kwargs) -> None:
    pass


def _record_params(setup: LaptSetup, log) -> None:
    """Write the resolved parameters; a checkpoint left by different parameters is not resumed."""
    import shutil

    path = setup.run_dir / "lapt_params.json"
    current = {k: v for k, v in as_dict(setup.params).items() if k != "run_dir"}
    checkpoints = setup.run_dir / "checkpoints"
    if path.is_file() and checkpoints.is_dir():
        previous = json.loads(path.read_text())
        changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        if changed:
            log(f"{checkpoints} came from other parameters ({', '.join(changed)}): starting afresh")
            shutil.rmtree(checkpoints)
    path.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- plots

STAGE_ORDER = ["before", "after"]
# English is scored twice (lib.training.scoring): general text is the forgetting check; the en
# corpus's test split (split "test") is the English side of the target's training domain
PANELS = [("target", "target language (adapted to)"),
          (ENGLISH_GENERAL, "English, general text (forgetting)"),
          ("english_parallel", "English, LibreOffice help\n(parallel to the training text)")]


def _bpc_frame(rows):
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame = frame[(frame["metric"] == "bits_per_char") & frame["split"].isin(["test", ENGLISH_GENERAL])].copy()
    target = (frame["language"] == frame["adapted_to"]).map({True: "target", False: "english_parallel"})
    frame["panel"] = target.where(frame["split"] == "test", ENGLISH_GENERAL)
    label = frame["adapted_to"].astype(str)
    for column in ("mode", "model"):  # name what differs between runs, nothing else
        if column in frame and frame[column].nunique() > 1:
            label = label + "\n" + frame[column].astype(str)
    if "label" in frame:  # a sweep step's own name says it better (wrapped: bars are narrow)
        wrapped = frame["label"].map(lambda text: textwrap.fill(str(text), 16), na_action="ignore")
        label = wrapped.where(frame["label"].notna(), label)
    frame["run"] = label
    return frame


def plot_before_after(rows, title: str = "LAPT: bits per character before and after (lower is better)"):
    """A panel each for the target language, general English and the en corpus (those the rows
    have), bars before/after per run, change in % on top."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = _bpc_frame(rows)
    sns.set_theme(style="whitegrid", context="notebook")
    panels = [(key, name) for key, name in PANELS if (frame["panel"] == key).any()]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (key, name) in zip(axes[0], panels):
        data = frame[frame["panel"] == key]
        order = sorted(data["run"].unique())
        sns.barplot(data=data, x="run", y="value", hue="stage", hue_order=STAGE_ORDER, order=order, ax=ax)
        for container in ax.containers:
            ax.bar_label(container, fmt="%.3f", fontsize=8)
        wide = data.pivot_table(index="run", columns="stage", values="value", aggfunc="first")
        for i, run in enumerate(order):
            if {"before", "after"} <= set(wide.columns) and run in wide.index:
                change = 100 * (wide.loc[run, "after"] - wide.loc[run, "before"]) / wide.loc[run, "before"]
                ax.annotate(f"{change:+.1f}%", (i, wide.loc[run].max() * 1.08), ha="center", fontsize=9)
        ax.set_ylim(0, data["value"].max() * 1.2)
        ax.set_title(name)
        ax.set_xlabel("run (language adapted to)")
        ax.set_ylabel("bits per character (held-out text)")
    # one legend for all panels, below them: inside an axis it covers a bar
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.legend(handles, labels, title="stage", loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_history(history, title: str = "validation bits per character during training"):
    """Validation bpc (and the training loss, per token in nats) against optimizer steps."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if "eval_bpc" in history:
        evals = history.dropna(subset=["eval_bpc"])
        ax.plot(evals["step"], evals["eval_bpc"], marker="o", label="validation bpc")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("bits per character")
    if "loss" in history:
        twin = ax.twinx()
        losses = history.dropna(subset=["loss"])
        twin.plot(losses["step"], losses["loss"], color="grey", alpha=0.5, label="train loss (nats/token)")
        twin.set_ylabel("train loss (nats/token)")
        twin.grid(False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def lapt_bpc_figure(results_dir: Path) -> Path:
    """Before/after bits per character of every collected LAPT run (results/tables/lapt.csv)."""
    from lib.plotting import read_table, save

    table = read_table(results_dir, "lapt.csv")
    return save(plot_before_after(table), results_dir, "lapt_bpc")


def lapt_cpu_bpc_figure(results_dir: Path) -> Path:
    """The same for the longer run of the cpu profile (results/tables/lapt_cpu.csv)."""
    from lib.plotting import read_table, save

    table = read_table(results_dir, "lapt_cpu.csv")
    title = "LAPT, cpu profile (1M tokens): bits per character before and after"
    return save(plot_before_after(table, title=title), results_dir, "lapt_cpu_bpc")


def vocab_lapt_ru_figure(results_dir: Path) -> Path:
    """Each tokenizer strategy of 04 followed by embeddings-only LAPT, against the unchanged
    model on the same characters (results/tables/vocab_lapt_ru.csv)."""
    from lib.plotting import read_table, save

    table = read_table(results_dir, "vocab_lapt_ru.csv")
    title = "New vocabulary + embeddings-only LAPT on ru, equal characters: bpc before and after"
    return save(plot_before_after(table, title=title), results_dir, "vocab_lapt_ru")


def vocab_lapt_ru_cpu_figure(results_dir: Path) -> Path:
    """The extended SmolLM2 after the cpu profile's million tokens of embeddings-only LAPT
    (results/tables/vocab_lapt_ru_cpu.csv; 02's rows of the same table are not before/after)."""
    from lib.plotting import read_table, save

    table = read_table(results_dir, "vocab_lapt_ru_cpu.csv")
    title = "Extended vocabulary + embeddings-only LAPT on ru, cpu profile (1M tokens)"
    fig = plot_before_after(table[table["stage"].notna()], title=title)
    # the bar the issue sets: 02's score of the unchanged model on the same test text
    unchanged = table[(table["model"] == "unchanged") & (table["split"] == "test")
                      & (table["source"] == "all") & (table["metric"] == "bits_per_char")]
    if len(unchanged):
        target = fig.axes[0]
        value = float(unchanged["value"].iloc[0])
        target.axhline(value, color="black", linestyle="--", linewidth=1)
        target.annotate(f"unchanged model: {value:.3f}", (target.get_xlim()[0], value), xytext=(4, 3),
                        textcoords="offset points", fontsize=8)
    return save(fig, results_dir, "vocab_lapt_ru_cpu")


def llamaturk_v_figure(results_dir: Path) -> Path:
    """LlamaTurk's v: 1000 added Turkish tokens with and without trained rows, against no v
    (results/tables/llamaturk_v.csv)."""
    from lib.plotting import read_table, save

    table = read_table(results_dir, "llamaturk_v.csv")
    title = "LlamaTurk's v on tr (SmolLM2-135M): bits per character before and after LAPT"
    return save(plot_before_after(table, title=title), results_dir, "llamaturk_v")


def demo_figure(results_dir: Path) -> Path:
    """The demo (python -m lib demo): this stage's before/after beside 08's benchmark rows
    (results/tables/demo.csv)."""
    from lib.demo_report import figure

    return figure(results_dir)


FIGURES = {"lapt_bpc": lapt_bpc_figure, "lapt_cpu_bpc": lapt_cpu_bpc_figure,
           "vocab_lapt_ru": vocab_lapt_ru_figure,
           "vocab_lapt_ru_cpu": vocab_lapt_ru_cpu_figure, "llamaturk_v": llamaturk_v_figure, "demo": demo_figure}
