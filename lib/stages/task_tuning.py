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

Both training routes train on the same items (``Task.train_items``) with the
same optimisation parameters; a parameter a route cannot use is an error that
names it (``TaskTuningParams.inapplicable``).

``model`` can be any earlier run directory, so LlamaTurk's chains (c, c-i,
c-i-t, i-t, t) are sweeps whose steps name earlier steps (see
``lib.sweep``). Every row carries ``stage`` = the ``chain`` label, ``route``
and (classifier) ``loss``, and ``model`` = the registry model at the root of
the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.params import DTYPES, ParamsError, check_choice, check_language, check_positive, check_shots
from lib.training.arguments import check_train_fields
from lib.training.lora import LORA_FIELDS, check_lora_fields, lora_settings
from lib.training.modes import TUNING_MODES

STAGE = "06_task_tuning"
ROUTES = ("none", "sft", "classifier")
HELDOUT_ITEMS = 64  # validation items whose answer loss the SFT route logs
# What each route reads besides the task: training fields (both training routes), the prompted
# evaluation's fields (sft and none), and each route's own.
TRAINING_FIELDS = {"mode", *LORA_FIELDS, "learning_rate", "lr_scheduler", "warmup_ratio", "num_epochs", "max_steps",
                   "batch_size", "grad_accum", "max_length", "max_train_items", "eval_steps", "save_steps",
                   "log_steps", "precision"}
PROMPTED_FIELDS = {"shots", "eval_dtype"}
UNUSED_BY_ROUTE = {
    "none": TRAINING_FIELDS | {"weighted_loss"},
    "sft": {"weighted_loss"},
    "classifier": PROMPTED_FIELDS | {"eval_steps"},  # the head is evaluated once, in float32, after training
}


@dataclass
class TaskTuningParams:
    """06_task_tuning: tune a model on one benchmark task's train split, then evaluate it."""

    model: str = "smollm2-135m-instruct"  # registry name, run directory (LAPT or instruction run), checkpoint, hub id
    language: str = "pl"  # the task's language
    task: str = "topic_classification"  # an offline task family (or family:language)
    route: str = "sft"  # sft (LlamaTurk: the task as instructions), classifier (Curie: a head) or none
    chain: str = "t"  # the label of this model's history in the table's stage column (base, t, c-i-t, ...)
    weighted_loss: bool = True  # classifier: class-weighted cross-entropy (balanced weights)
    corpus_tag: str = "default"  # the corpus the offline task is built from
    mode: str = "lora"  # lora or full
    lora_r: int | None = None  # LoRA rank; None = 32
    lora_alpha: int | None = None  # None = 16
    lora_dropout: float | None = None  # None = 0.05
    lora_target_modules: list[str] | None = None  # None = all-linear
    learning_rate: float = 1e-3  # peak rate after warmup
    lr_scheduler: str = "cosine"  # cosine, linear or constant_with_warmup
    warmup_ratio: float = 0.05  # fraction of the steps spent in warmup
    num_epochs: float = 1.0  # passes over the training items when max_steps is 0
    max_steps: int = 0  # optimizer steps; 0 = num_epochs passes
    batch_size: int = 8  # items per micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    max_length: int = 256  # tokens per training item
    max_train_items: int = 600  # items of the train split used (a fixed subset; 0 = all)
    eval_steps: int = 0  # sft: held-out loss every N steps (0 = none)
    save_steps: int = 0  # checkpoint every N steps (0 = none)
    log_steps: int = 10  # training loss logged every N steps
    shots: list[int] = field(default_factory=lambda: [0, 3])  # sft and none: prompt shots at evaluation
    max_items: int = 300  # evaluated test items (a fixed hashed subset; 0 = all)
    n_bootstrap: int = 1000  # bootstrap resamples for confidence intervals
    precision: str = "auto"  # auto (bf16 where supported), bf16 or fp32
    eval_dtype: str = "bfloat16"  # dtype of the prompted evaluation (sft and none routes)
    device: str = "auto"  # auto, cpu or cuda
    seed: int = 1234  # data order, few-shot draw, adapter initialisation
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    def validate(self) -> None:
        from lib.tasks.offline import CLASSIFICATION_FAMILIES, OFFLINE, ZERO_SHOT_FAMILIES

        check_language(self.language)
        check_choice("route", self.route, ROUTES)
        check_choice("mode", self.mode, TUNING_MODES)
        check_choice("eval_dtype", self.eval_dtype, DTYPES)
        check_train_fields(self)
        check_lora_fields(self)
        check_shots(self.shots)
        check_positive("max_length", self.max_length)
        if not self.chain or any(c.isspace() for c in self.chain):
            raise ParamsError(f"chain must be a label without spaces (base, t, c-i-t, ...), got {self.chain!r}")
        for key in ("max_train_items", "max_items", "n_bootstrap"):
            check_positive(key, getattr(self, key), allow_zero=True)
        family, _, language = self.task.partition(":")
        if family not in OFFLINE:
            raise ParamsError(f"task: unknown offline task {family!r}; known: {', '.join(OFFLINE)}")
        if language and language != self.language:
            raise ParamsError(f"task {self.task!r} is in {language}, but language is {self.language!r}")
        if family in ZERO_SHOT_FAMILIES:
            raise ParamsError(f"task {family!r} is built from the test split alone (no train items to tune "
                              "on); evaluate it with 08_evaluate")
        if self.language not in OFFLINE[family].languages:
            raise ParamsError(f"task {family!r} exists for {', '.join(OFFLINE[family].languages)}, "
                              f"not {self.language!r}")
        if self.route == "classifier" and family not in CLASSIFICATION_FAMILIES:
            raise ParamsError(f"route classifier trains a classification head; task {family!r} is not a "
                              "classification task (use route sft)")

    def inapplicable(self) -> set[str]:
        """The fields this route does not read (see UNUSED_BY_ROUTE); lora_* in full fine-tuning."""
        unused = set(UNUSED_BY_ROUTE[self.route]) if self.route in UNUSED_BY_ROUTE else set()
        return unused | (set(LORA_FIELDS) if self.mode != "lora" else set())

    def why_inapplicable(self) -> str:
        return f"route {self.route!r}" + (f" in mode {self.mode!r}, which trains no LoRA adapter"
                                          if self.mode != "lora" else "")

    def lora_settings(self) -> dict[str, Any] | None:
        return lora_settings(self, ("lora",))

    @property
    def task_family(self) -> str:
        return self.task.partition(":")[0]


Params = TaskTuningParams


# ---------------------------------------------------------------- steps


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
    from lib.tasks.evaluation import load_task

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    task = load_task(f"{params.task_family}:{params.language}", corpus_tag=params.corpus_tag)
    items = task.train_items(params.max_train_items, params.seed) if params.route != "none" else []
    setup = TaskSetup(params, run_dir, task, base_model_of(params.model), items)
    log(f"{task.id}: {len(items)} training items, {task.n_available} {task.eval_split} items; "
        f"route {params.route}, chain {params.chain}")
    return setup


@dataclass
class TaskOutcome:
    """What a run of any route produced: rows for the table, predictions, what the notebook shows."""

    rows: list[dict[str, Any]]
    predictions: list[dict[str, Any]]
    summary: dict[str, Any]
    confusion: list[list[int]] | None = None  # classifier route: [true class][predicted class]
    class_weights: list[float] | None = None  # classifier route with weighted_loss


def tune_and_evaluate(setup: TaskSetup, log=print) -> TaskOutcome:
    """The route's training (if any), then its evaluation."""
    summary: dict[str, Any] = {"setup": setup.summary()}
    route = setup.params.route
    if route == "sft":
        outcome, model_dir = train_sft(setup, log=log)
        rows, predictions = evaluate_prompted(setup, str(model_dir), log=log)
        return TaskOutcome(rows, predictions, summary | {"train": outcome.train_metrics,
                                                         "resumed_from": outcome.resumed_from})
    if route == "classifier":
        result, rows = train_and_evaluate_classifier(setup, log=log)
        return TaskOutcome(rows, result.predictions,
                           summary | {"train": result.train_metrics, "class_weights": result.class_weights,
                                      "confusion": result.confusion, "notes": result.notes},
                           confusion=result.confusion, class_weights=result.class_weights)
    rows, predictions = evaluate_prompted(setup, setup.params.model, log=log)
    return TaskOutcome(rows, predictions, summary)


def train_sft(setup: TaskSetup, log=print):
    """LlamaTurk's task tuning; returns (SftOutcome, path of the merged checkpoint)."""
    from datasets import Dataset

    from lib.models import check_compatible, check_context, load_tokenizer, resolve_device
    from lib.training import modes as M
    from lib.training.arguments import TrainSettings
    from lib.training.modes import export_checkpoint
    from lib.training.sft import build_trainer, run_training

    p = setup.params
    device = resolve_device(p.device)
    precision = M.resolve_precision(p.precision, device)
    check_context(p.model, max_length=p.max_length)
    tokenizer = load_tokenizer(p.model)
    trainable = M.load_trainable(p.model, p.mode, lora=p.lora_settings(), device=device, precision=precision)
    check_compatible(trainable.model, tokenizer, p.model)
    train = Dataset.from_list(sft_examples(setup.task, setup.train_items)).shuffle(seed=p.seed)
    validation = setup.task.splits.get("validation") or []
    heldout = Dataset.from_list(sft_examples(setup.task, validation[:HELDOUT_ITEMS])) if validation else None
    trainer = build_trainer(trainable, tokenizer, train, heldout, settings=TrainSettings.of(p),
                            max_length=p.max_length, run_dir=setup.run_dir, precision=precision, device=device,
                            packing="auto")
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
    from lib.models import load_model_and_tokenizer, resolve_device
    from lib.tasks.evaluation import evaluate_task

    p = setup.params
    model, tokenizer = load_model_and_tokenizer(model_spec, dtype=p.eval_dtype, device=resolve_device(p.device))
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
    from lib.training.arguments import TrainSettings

    p = setup.params
    result = train_classifier(
        p.model, setup.task, setup.train_items, TrainSettings.of(p), output_dir=setup.run_dir,
        weighted=p.weighted_loss, mode=p.mode, lora=p.lora_settings(), max_length=p.max_length,
        max_eval_items=p.max_items, device=p.device, precision=p.precision, n_bootstrap=p.n_bootstrap, log=log)
    rows = [row | setup.labels | {"model": setup.base_model} for row in result.rows]
    return result, rows


def class_weights_table(setup: TaskSetup, outcome: TaskOutcome):
    """Per class: training items and the loss weight (classifier route)."""
    import pandas as pd

    classes = list(setup.task.classes)
    counts = [sum(item.label == c for item in setup.train_items) for c in range(len(classes))]
    weights = outcome.class_weights or [1.0] * len(classes)
    return pd.DataFrame({"class": classes, "train_items": counts, "loss_weight": weights})


# ---------------------------------------------------------------- plots


def plot_confusion(confusion: list[list[int]], classes: list[str], title: str = "confusion matrix (test items)"):
    """Rows: the true class; columns: the predicted one."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(0.6 * len(classes) + 3, 0.5 * len(classes) + 2))
    sns.heatmap(confusion, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                xticklabels=classes, yticklabels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def chain_labels(table):
    """``model`` becomes 'stage · route[ (loss)]' so that the plot's colours are the chains."""
    table = table.copy()
    label = table["stage"].astype(str) + " · " + table["route"].astype(str)
    if "loss" in table.columns:
        loss = table["loss"].fillna("").astype(str)
        label = label + loss.where(loss == "", " (" + loss + " CE)")
    table["model"] = label
    table["n_shot"] = table["n_shot"].fillna(0).astype(int)
    return table


def plot_chains(table, title: str):
    """The benchmark dot plot with one colour per chain (the classifier's rows in the 0-shot panel)."""
    from lib.tasks.plots import plot_benchmarks

    return plot_benchmarks(chain_labels(table), title=title)


def _chains_figure(results_dir: Path, name: str, title: str) -> Path:
    from lib.plotting import read_table, save

    return save(plot_chains(read_table(results_dir, f"{name}.csv"), title), results_dir, name)


def task_tuning_figure(results_dir: Path) -> Path:
    """Polish: the untuned model against task SFT and the classification head (weighted vs plain CE)."""
    return _chains_figure(results_dir, "task_tuning", "Task tuning (pl): headline metric, 95% CI, chance")


def task_tuning_tr_figure(results_dir: Path) -> Path:
    """Turkish: LlamaTurk's chains (base, t, c-i-t) on one task."""
    return _chains_figure(results_dir, "task_tuning_tr", "LlamaTurk chains (tr): headline metric, 95% CI, chance")


FIGURES = {"task_tuning": task_tuning_figure, "task_tuning_tr": task_tuning_tr_figure}
