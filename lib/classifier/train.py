"""``train_classifier``: checks, training, float32 evaluation into benchmark rows, the saved classifier."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from lib.classifier.data import classifier_texts, token_dataset
from lib.classifier.loss import ClassifierTrainer, class_weights
from lib.classifier.model import load_classifier, lora_settings, predict_logits
from lib.params import PRECISIONS
from lib.tasks.base import Item, Task, TaskError
from lib.training import TrainingSetupError
from lib.training.arguments import TrainSettings

N_SHOT = 0  # rows' n_shot: the classifier sees no solved examples


@dataclass
class ClassifierResult:
    """What a classifier run produced (also written to ``<output_dir>/classifier.json``)."""

    rows: list[dict[str, Any]]  # the benchmark's long format, one row per metric
    predictions: list[dict[str, Any]]  # per evaluated item: item (its id), label, pred, float32 logits, model, ...
    confusion: list[list[int]]  # [true class][predicted class], in task.classes order
    class_weights: list[float] | None  # the loss's weights; None when unweighted
    train_metrics: dict[str, float]  # train_loss, train_runtime (s), samples/s, epoch, steps, tokens_seen
    history: list[dict[str, Any]]  # the trainer's log (loss, learning rate, grad norm per logged step)
    model_dir: Path | None = None  # the saved classifier with its tokenizer
    notes: list[str] = field(default_factory=list)


def train_classifier(model_spec: str, task: Task, train: Sequence[Item], settings: TrainSettings, *,
                     output_dir: Path, weighted: bool = True, mode: str = "lora", lora: dict[str, Any] | None = None,
                     max_length: int = 256, max_eval_items: int = 500, device: str = "auto", precision: str = "auto",
                     inputs: str = "text", n_bootstrap: int = 1000, callbacks: Sequence[TrainerCallback] = (),
                     log=print) -> ClassifierResult:
    """Train a classification head on ``train`` (items of ``task``), evaluate on the task's evaluated
    items, save it.

    Everything that can be checked is checked before the model loads. ``settings``
    (rate, schedule, warmup, epochs or steps, batch, accumulation, logging,
    checkpoints, seed) go to the Trainer as they are; with ``save_steps`` a killed
    run resumes from ``<output_dir>/checkpoints``. The saved model
    (``<output_dir>/model``, LoRA merged) reloads with
    ``AutoModelForSequenceClassification``; ``callbacks`` are handed to the Trainer.
    """
    from lib.models import check_context, resolve_device
    from lib.training import modes as M
    from lib.training.arguments import trainer_arguments
    from lib.training.trainer import finished_checkpoint, last_checkpoint, load_finished

    # ---- checks, before any loading
    if task.kind != "classification":
        raise TaskError(f"task {task.id} is a {task.kind} task; the classifier route needs a classification task")
    if mode not in M.TUNING_MODES:
        raise TrainingSetupError(f"unknown mode {mode!r} for the classifier; choose one of {', '.join(M.TUNING_MODES)}")
    if mode == "full" and lora:
        raise TrainingSetupError("LoRA settings were given but mode is 'full'")
    if mode == "lora":
        lora = lora_settings(lora)
    if precision not in PRECISIONS:
        raise TrainingSetupError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    for name, value, low in (("max_length", max_length, 2), ("max_eval_items", max_eval_items, 0)):
        if value < low:
            raise TrainingSetupError(f"{name} must be >= {low}, got {value}")
    if not train:
        raise TaskError(f"task {task.id} has no train items to fit a classifier on")
    n_classes = len(task.classes)
    labels = [item.label for item in train]
    bad = [item.id for item in train if not 0 <= item.label < n_classes]
    if bad:
        raise TaskError(f"task {task.id}: train item {bad[0]} has a label outside its {n_classes} classes")
    counts = Counter(labels)
    if len(counts) < 2:
        raise TaskError(f"task {task.id}: the train items hold one class only ({task.classes[labels[0]]!r}); "
                        "a classifier needs at least two")
    evaluated = task.eval_items(max_eval_items)  # the benchmark's subset
    train_texts = classifier_texts(task, train, inputs)
    eval_texts = classifier_texts(task, evaluated, inputs)
    device = resolve_device(device)
    precision = M.resolve_precision(precision, device)
    check_context(model_spec, max_length=max_length)

    # ---- model and data
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer, notes = load_classifier(model_spec, task.classes, mode=mode, lora=lora, seed=settings.seed)
    weights = class_weights(labels, n_classes) if weighted else None
    absent = [task.classes[c] for c in range(n_classes) if c not in counts]
    if absent:
        notes.append(f"class(es) without train items (weight 0, never a target): {', '.join(absent)}")
    dataset = token_dataset(tokenizer, train_texts, labels, max_length)
    log(f"{model_spec} [{mode}, {'weighted' if weighted else 'unweighted'} loss] on {task.id}: "
        f"{len(train)} train items {dict(sorted(counts.items()))}, {len(evaluated)} evaluated, {device}/{precision}")
    for note in notes:
        log(f"  {note}")

    # ---- training (resumes from the last checkpoint of a killed run)
    from transformers import DataCollatorWithPadding, TrainingArguments

    checkpoints = output_dir / "checkpoints"
    args = trainer_arguments(settings, output_dir=checkpoints, precision=precision, device=device, has_eval=False,
                             arguments_class=TrainingArguments, remove_unused_columns=False)
    trainer = ClassifierTrainer(model=model, args=args, train_dataset=dataset,
                                data_collator=DataCollatorWithPadding(tokenizer), class_weights=weights,
                                callbacks=list(callbacks))
    resume = last_checkpoint(checkpoints)
    if finished_checkpoint(resume):
        load_finished(trainer, resume)
        train_metrics: dict[str, Any] = {}
    else:
        if resume:
            log(f"resuming from {resume}")
        train_metrics = {k: float(v) for k, v in trainer.train(resume_from_checkpoint=resume).metrics.items()
                         if k != "total_flos"}
    train_metrics["steps"] = trainer.state.global_step
    train_metrics["tokens_seen"] = trainer.state.num_input_tokens_seen  # also after a resume that had no training left
    history = [dict(entry) for entry in trainer.state.log_history]
    # drop accelerate's bf16 autocast wrapper: evaluation and the saved model are float32
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    if mode == "lora":
        model = model.merge_and_unload()
    model.eval()

    # ---- evaluation and saving
    logits = predict_logits(model, tokenizer, eval_texts, batch_size=settings.batch_size, max_length=max_length)
    preds = logits.argmax(axis=1) if len(logits) else np.zeros(0, dtype=int)
    truth = np.array([item.label for item in evaluated], dtype=int)
    rows = classifier_rows(task, truth, preds, model_spec=model_spec, n_available=task.n_available,
                           max_items=max_eval_items, seed=settings.seed, weighted=weighted, mode=mode,
                           n_bootstrap=n_bootstrap)
    from sklearn.metrics import confusion_matrix

    confusion = confusion_matrix(truth, preds, labels=list(range(n_classes))).tolist() if len(truth) else []
    labels_of = {"model": model_spec, "language": task.language, "task": task.name, "n_shot": N_SHOT,
                 "route": "classifier"}  # as evaluate_task labels its predictions, so the two concatenate
    predictions = [{"item": item.id, "label": int(t), "pred": int(p), "logits": [float(x) for x in row]} | labels_of
                   for item, t, p, row in zip(evaluated, truth, preds, logits)]
    model_dir = output_dir / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    result = ClassifierResult(rows, predictions, confusion, weights, train_metrics, history, model_dir, notes)
    params = {"model": model_spec, "task": task.id, "weighted": weighted, "mode": mode, "lora": lora,
              "max_length": max_length, "max_eval_items": max_eval_items, "device": device, "precision": precision,
              "inputs": inputs, **dataclasses.asdict(settings)}
    record = {"classes": list(task.classes), "class_weights": weights,
              "train_counts": {task.classes[c]: counts.get(c, 0) for c in range(n_classes)},
              "n_train": len(train), "params": params, "metrics": rows, "confusion": confusion,
              "train_metrics": train_metrics, "notes": notes}
    (output_dir / "classifier.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    log(", ".join(f"{r['metric']} {r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] (majority "
                  f"{r['majority']:.3f})" for r in rows) + f"; saved to {model_dir}")
    return result


def classifier_rows(task: Task, truth: np.ndarray, preds: np.ndarray, *, model_spec: str, n_available: int,
                    max_items: int, seed: int, weighted: bool, mode: str,
                    n_bootstrap: int = 1000) -> list[dict[str, Any]]:
    """acc and macro_f1 rows with bootstrap intervals, chance and majority, as ``evaluate_task`` builds them."""
    from lib.tasks import metrics as M

    common = {"model": model_spec, "language": task.language, "task": task.name, "n_shot": N_SHOT,
              "n": len(truth), "n_available": n_available, "max_items": max_items, "kind": task.kind,
              "split": task.eval_split, "sampling": None, "seed": seed, "dtype": "float32",
              "route": "classifier", "loss": "weighted" if weighted else "unweighted", "mode": mode}
    if not len(truth):
        nan = float("nan")
        return [common | {"metric": m, "value": nan, "ci_low": nan, "ci_high": nan, "chance": nan, "majority": nan}
                for m in ("acc", "macro_f1")]
    names = np.array(task.classes)
    constant = np.full_like(truth, np.bincount(truth).argmax())  # the most frequent evaluated label
    acc_ci = M.mean_ci(preds == truth, n_resamples=n_bootstrap)
    f1_ci = M.bootstrap_ci(M.macro_f1, names[truth], names[preds], n_resamples=n_bootstrap)
    values = [("acc", M.accuracy(truth, preds), acc_ci, M.chance_accuracy([len(names)] * len(truth)),
               M.accuracy(truth, constant)),
              ("macro_f1", M.macro_f1(names[truth], names[preds]), f1_ci, M.chance_macro_f1(names[truth], names),
               M.macro_f1(names[truth], names[constant]))]
    return [common | {"metric": m, "value": v, "ci_low": ci[0], "ci_high": ci[1], "chance": c, "majority": maj}
            for m, v, ci, c, maj in values]
