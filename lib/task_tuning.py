"""06_task_tuning: tune a model on one benchmark task's train split, then evaluate it.

Three routes (``route``):

- ``sft`` (LlamaTurk's t): the task's train items as prompt -> answer
  examples in the task's own prompt format, TRL's SFTTrainer with the loss on
  the answer only; then the merged model is evaluated zero- and few-shot by
  ``lib.tasks`` exactly as 08_evaluate evaluates any model.
- ``classifier`` (Curie's KLEJ fine-tuning): a sequence-classification head
  with LoRA and class-weighted cross-entropy (``lib.classifier``).
- ``none``: no training, only the evaluation: the ``base`` rows the tuned
  chains are compared with.

``model`` can be any earlier run directory, so LlamaTurk's chains (c, c-i,
c-i-t, i-t, t) are sweeps whose steps name earlier steps (see
``lib.sweep``). Every row carries ``stage`` = the ``chain`` label, ``route``
and (classifier) ``loss``, and ``model`` = the registry model at the root of
the chain.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib import params as P
from lib.params import TaskTuningParams
from lib.training import TrainingSetupError

STAGE = "06_task_tuning"
HELDOUT_ITEMS = 64  # validation items whose answer loss the SFT route logs


def from_namespace(namespace: dict[str, Any]) -> TaskTuningParams:
    return P.from_namespace(STAGE, namespace)


def load_task(params: TaskTuningParams):
    from lib.tasks.evaluate_models import load_task as load

    return load(f"{params.task_family}:{params.language}", corpus_tag=params.corpus_tag)


def train_items(task, max_items: int, seed: int) -> list:
    """The train split, or a fixed random subset of ``max_items`` of it (0 = all)."""
    items = sorted(task.splits.get("train") or [], key=lambda i: i.id)
    if not items:
        raise TrainingSetupError(f"task {task.id} has no train items to tune on")
    if max_items and len(items) > max_items:
        items = random.Random(f"{seed}:{task.id}:train").sample(items, max_items)
    return items


def sft_examples(task, items) -> list[dict[str, str]]:
    """Prompt -> answer rows in the task's zero-shot prompt format (what evaluation shows the model)."""
    rows = []
    for item in items:
        prefix, query = task.prompts([item], 0)[0]
        rows.append({"prompt": prefix + query, "completion": task.prompt.answer(task.answer_text(item))})
    return rows


@dataclass
class TaskSetup:
    params: TaskTuningParams
    run_dir: Path
    task: Any
    base_model: str
    train_items: list

    @property
    def labels(self) -> dict[str, Any]:
        p = self.params
        source = Path(p.model).name if Path(p.model).is_dir() else p.model  # a run id, not a long path
        return {"model": self.base_model, "stage": p.chain, "route": p.route, "from": source}

    def summary(self) -> dict[str, Any]:
        t = self.task
        return {"task": t.id, "kind": t.kind, "route": self.params.route, "chain": self.params.chain,
                "model": self.params.model, "base_model": self.base_model,
                "train_items": len(self.train_items), "train_available": len(t.splits.get("train") or []),
                "eval_split": t.eval_split, "eval_available": t.n_available, "classes": list(t.classes)}


def prepare(params: TaskTuningParams, run_dir: str | Path, log=print) -> TaskSetup:
    from lib.runs import base_model_of

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    task = load_task(params)
    if params.route == "classifier" and task.kind != "classification":
        raise TrainingSetupError(f"route classifier needs a classification task; {task.id} is {task.kind}")
    items = train_items(task, params.max_train_items, params.seed) if params.route != "none" else []
    setup = TaskSetup(params, run_dir, task, base_model_of(params.model), items)
    log(f"{task.id}: {len(items)} training items, {task.n_available} {task.eval_split} items; "
        f"route {params.route}, chain {params.chain}")
    return setup


def train_sft(setup: TaskSetup, log=print):
    """LlamaTurk's task tuning; returns (SftOutcome, path of the merged checkpoint)."""
    from datasets import Dataset

    from lib.instruction_tuning import settings_of
    from lib.models import check_compatible, load_tokenizer
    from lib.training import modes as M
    from lib.training.modes import export_checkpoint
    from lib.training.sft import build_trainer, run_training

    p = setup.params
    device = M.resolve_device(p.device)
    precision = M.resolve_precision(p.precision, device)
    tokenizer = load_tokenizer(p.model)
    trainable = M.load_trainable(p.model, p.mode, lora=p.lora_settings(), device=device, precision=precision)
    check_compatible(trainable.model, tokenizer, p.model)
    train = Dataset.from_list(sft_examples(setup.task, setup.train_items)).shuffle(seed=p.seed)
    validation = setup.task.splits.get("validation") or []
    heldout = Dataset.from_list(sft_examples(setup.task, validation[:HELDOUT_ITEMS])) if validation else None
    trainer = build_trainer(trainable, tokenizer, train, heldout, settings=settings_of(p), run_dir=setup.run_dir,
                            precision=precision, device=device, packing="auto")
    outcome = run_training(trainer, setup.run_dir, save_adapter=trainable.peft_config is not None, log=log)
    out = export_checkpoint(
        outcome.trainer.model, base_spec=p.model, mode=p.mode, adapter_dir=setup.run_dir / "adapter",
        out_dir=setup.run_dir / "model", tokenizer=tokenizer,
        provenance={"stage": STAGE, "base_model": setup.base_model, "from": p.model, "task": setup.task.id,
                    "route": "sft", "chain": p.chain, "lora": p.lora_settings(), "run_dir": str(setup.run_dir)})
    log(f"standalone checkpoint: {out}")
    outcome.trainer = None  # free the training copy before the evaluation loads the merged one
    return outcome, out


def evaluate_prompted(setup: TaskSetup, model_spec: str, log=print) -> tuple[list[dict], list[dict]]:
    """Zero- and few-shot evaluation of ``model_spec`` on the task, as 08_evaluate does it."""
    from lib.models import load_model_and_tokenizer, pick_device
    from lib.tasks.evaluate_models import evaluate_task

    p = setup.params
    model, tokenizer = load_model_and_tokenizer(model_spec, dtype=p.eval_dtype, device=pick_device(p.device))
    rows, predictions = [], []
    for n_shot in p.shots:
        r, pr = evaluate_task(model, tokenizer, setup.task, n_shot, model_name=setup.base_model, seed=p.seed,
                              max_items=p.max_items, n_bootstrap=p.n_bootstrap)
        log(f"{setup.task.id} {n_shot}-shot: " + ", ".join(f"{x['metric']} {x['value']:.3f}" for x in r))
        rows += r
        predictions += pr
    return [row | setup.labels for row in rows], predictions


def train_and_evaluate_classifier(setup: TaskSetup, log=print):
    """Curie's route: a LoRA classification head, weighted or plain cross-entropy."""
    from lib.classifier import train_classifier

    p = setup.params
    result = train_classifier(
        p.model, setup.task, output_dir=setup.run_dir, weighted=p.weighted_loss, mode=p.mode,
        lora=p.lora_settings(), learning_rate=p.learning_rate, num_epochs=p.num_epochs,
        batch_size=p.batch_size, max_length=p.max_length, max_train_items=p.max_train_items,
        max_eval_items=p.max_items, seed=p.seed, device=p.device, precision=p.precision,
        n_bootstrap=p.n_bootstrap, log=log)
    rows = [row | setup.labels | {"model": setup.base_model} for row in result.rows]
    return result, rows
