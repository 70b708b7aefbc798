"""03_lapt: language-adaptive pre-training (continued pre-training on raw text).

Any registry model (or run directory, local checkpoint, hub id), any corpus
language, five training modes (see ``lib.training.modes``). The steps, which
the notebook calls one by one and ``scripts/train_lapt.py`` runs in a row::

    setup = prepare(params, run_dir)        # every check, before any training
    before = score_before(setup)            # target test split + English, base model
    outcome = train(setup)                  # SFTTrainer, packed blocks, resumes a killed run
    after, check = finish(setup, outcome)   # merged checkpoint in <run_dir>/model, rescored

The run directory then holds: ``model/`` (standalone checkpoint with its
tokenizer: later stages name the run directory as a model), ``adapter/`` (LoRA
modes), ``checkpoints/`` (trainer state, for resume), ``tb/`` (TensorBoard),
``train_log.csv``, ``lapt_params.json`` (the resolved parameters).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib import params as P
from lib.params import PRECISIONS, SCHEDULERS, LaptParams, ParamsError  # noqa: F401  (defined there)
from lib.training import TrainingSetupError

STAGE = "03_lapt"


# ---------------------------------------------------------------- parameters


def params_class() -> type:
    """LaptParams, or the class lib.params registers for 03_lapt once it does."""
    return P.STAGES.get(STAGE, LaptParams)


def resolve_params(*, profile: str | None = None, files: list[str | Path] = (),
                   overrides: dict[str, Any] | None = None):
    """Defaults < profile section < parameter files < overrides, as lib.params.resolve."""
    if STAGE in P.STAGES:
        return P.resolve(STAGE, profile=profile, files=files, overrides=overrides)
    merged: dict[str, Any] = {}
    if profile:
        merged.update(P.load_profile(profile).get(STAGE, {}) or {})
    for path in files:
        merged.update(P._read_yaml(Path(path)))
    merged.update(overrides or {})
    return P.build(LaptParams, merged)


def from_namespace(namespace: dict[str, Any]):
    """Validate the notebook's parameters cell."""
    cls = params_class()
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in namespace]
    if missing:
        raise ParamsError(f"the parameters cell of {STAGE} lacks {', '.join(missing)}")
    return P.build(cls, {n: namespace[n] for n in names})


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
            "model": p.model, "mode": p.mode, "language": p.language, "device": self.device,
            "precision": self.precision, "world_size": self.world_size,
            "lora": p.lora_settings(), "tied_embeddings": self.trainable.tied_embeddings,
            "train_docs": self.train_stats.n_docs, "train_tokens": self.train_stats.n_tokens,
            "train_chars": self.train_stats.n_chars, "block_size": p.block_size,
            "tokens_per_step": p.block_size * p.batch_size * p.grad_accum * self.world_size,
            "planned_steps": self.planned_steps,
            "val_chars": sum(len(t) for t in self.val_texts),
            "eval_chars": {s.language: sum(len(t) for t in s.texts) for s in self.eval_sets},
            "notes": self.notes + self.trainable.notes,
        }


def prepare(params, run_dir: str | Path, log=print) -> LaptSetup:
    """Check everything that can be checked and load data and model; raise before any training."""
    from accelerate import PartialState
    from transformers import AutoConfig

    from lib.models import check_compatible, load_tokenizer, resolve
    from lib.training import data as D
    from lib.training import modes as M
    from lib.training.scoring import eval_sets
    from lib.training.trainer import planned_steps

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = M.resolve_device(params.device)
    M.check_hardware(params.mode, device)  # QLoRA on a CPU stops here, before any loading
    precision = M.resolve_precision(params.precision, device)

    config = AutoConfig.from_pretrained(resolve(params.model))
    context = getattr(config.get_text_config(), "max_position_embeddings", None)
    for key in ("block_size", "eval_max_length"):
        if context and getattr(params, key) > context:
            raise TrainingSetupError(f"{key} ({getattr(params, key)}) exceeds {params.model}'s context "
                                     f"of {context} positions")
    tokenizer = load_tokenizer(params.model)

    texts, ids = D.split_documents(params.language, params.corpus_tag, "train")
    sequences, stats = D.training_sequences(tokenizer, texts, ids, max_tokens=params.max_train_tokens,
                                            seed=params.seed)
    D.check_enough_tokens(stats, params.block_size, f"the {params.language}/{params.corpus_tag} train split")
    val_texts: list[str] = []
    if params.eval_steps:
        v_texts, v_ids = D.split_documents(params.language, params.corpus_tag, "validation")
        val_texts = D.subset(v_texts, v_ids, params.val_max_chars)
    sets = eval_sets(params.language, params.corpus_tag, test_max_chars=params.test_max_chars,
                     english_max_chars=params.english_max_chars, english_corpus_tag=params.english_corpus_tag)

    trainable = M.load_trainable(params.model, params.mode, lora=params.lora_settings(), device=device,
                                 precision=precision, gradient_checkpointing=params.gradient_checkpointing)
    check_compatible(trainable.model, tokenizer, params.model)
    world = PartialState().num_processes
    steps = planned_steps(stats.n_tokens, params.block_size, params.batch_size, params.grad_accum, world,
                          params.max_steps, params.num_epochs)
    notes = []
    if device == "cpu" and precision == "bf16":
        notes.append("bf16 autocast on a CPU with native bfloat16 (AMX/AVX512-BF16); weights stay float32")
    setup = LaptSetup(params, run_dir, device, precision, world, tokenizer, trainable,
                      D.token_dataset(sequences), stats, val_texts, sets, steps, notes)
    if PartialState().is_main_process:
        _record_params(setup, log)
    PartialState().wait_for_everyone()
    log(f"{params.model} [{params.mode}] on {params.language}: {stats.n_tokens} training tokens "
        f"({stats.n_docs} documents), ~{steps} steps of {setup.summary()['tokens_per_step']} tokens, "
        f"{device}/{precision}")
    return setup


def score_before(setup: LaptSetup, log=print) -> list[dict[str, Any]]:
    """The base model's scores (cached in the run directory, so a resumed run does not redo them)."""
    from lib.models import load_model
    from lib.training.scoring import score_rows

    cache = setup.run_dir / "scores_before.json"
    key = {"model": setup.params.model, **setup.score_settings,
           "sets": {s.language: [len(s.texts), sum(map(len, s.texts))] for s in setup.eval_sets}}
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
    from lib.training.data import document_token_ids, token_dataset
    from lib.training.modes import parameter_counts
    from lib.training.trainer import (
        BpcTrainer,
        finished_checkpoint,
        history_table,
        last_checkpoint,
        load_finished,
        make_config,
        tensorboard_callback,
        use_fused_lm_head,
    )

    p = setup.params
    checkpoints = setup.run_dir / "checkpoints"
    resume = last_checkpoint(checkpoints)
    if resume:
        log(f"resuming from {resume}")
    config = make_config(
        output_dir=checkpoints, logging_dir=setup.run_dir / "tb", block_size=p.block_size,
        batch_size=p.batch_size, grad_accum=p.grad_accum, learning_rate=p.learning_rate,
        lr_scheduler=p.lr_scheduler, warmup_ratio=p.warmup_ratio, weight_decay=p.weight_decay,
        max_grad_norm=p.max_grad_norm, max_steps=p.max_steps, num_epochs=p.num_epochs,
        precision=setup.precision, device=setup.device, gradient_checkpointing=p.gradient_checkpointing,
        eval_steps=p.eval_steps, eval_on_start=resume is None, save_steps=p.save_steps,
        save_total_limit=p.save_total_limit, log_steps=p.log_steps, seed=p.seed)
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
        new_tokens = tokens - (_tokens_at(resume) if resume else 0)
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
    _free_memory()
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


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _quiet(*_args, **_kwargs) -> None:
    pass


def _record_params(setup: LaptSetup, log) -> None:
    """Write the resolved parameters; a checkpoint left by different parameters is not resumed."""
    import shutil

    path = setup.run_dir / "lapt_params.json"
    current = {k: v for k, v in P.as_dict(setup.params).items() if k != "run_dir"}
    checkpoints = setup.run_dir / "checkpoints"
    if path.is_file() and checkpoints.is_dir():
        previous = json.loads(path.read_text())
        changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        if changed:
            log(f"{checkpoints} came from other parameters ({', '.join(changed)}): starting afresh")
            shutil.rmtree(checkpoints)
    path.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n")
