"""05_instruction_tuning: SFT on chat-format instructions in the target language (LlamaTurk's i).

The steps, which the notebook calls one by one::

    setup = prepare(params, run_dir)     # data built or loaded, model and chat template checked
    before = heldout_scores(setup, ...)  # completion loss and chrF of the model before tuning
    outcome = train(setup)               # TRL SFTTrainer, loss on the assistant's tokens only
    after, samples = finish(setup, outcome)   # merged checkpoint in <run_dir>/model, rescored

The model can be any earlier run (``model`` = a LAPT run directory gives the
c-i chain); the run directory's ``model/`` is a standalone checkpoint that the
task-tuning stage (06) can start from in turn.

Held-out measures, before and after, on the instruction set's test split
(prompts built from corpus-train groups that training never saw):
``completion_loss`` (nats per answer token, teacher-forced) and ``chrf`` of
greedy answers against the references (sacrebleu), next to a few generations
shown side by side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.languages import TARGET_LANGUAGES
from lib.params import ParamsError, check_choice, check_language, check_positive
from lib.training import TrainingSetupError
from lib.training.arguments import check_train_fields
from lib.training.lora import LORA_FIELDS, check_lora_fields, lora_settings
from lib.training.modes import INSTRUCTION_MODES, LORA_MODES
from lib.training.sft import CHAT_TEMPLATES, PACKING

STAGE = "05_instruction_tuning"


@dataclass
class InstructionTuningParams:
    """05_instruction_tuning: SFT on chat-format instructions in the target language."""

    model: str = "smollm2-135m-instruct"  # registry name, run directory (a LAPT run...), checkpoint or hub id
    language: str = "tr"  # pl, tr or ru
    corpus_tag: str = "default"  # the corpus the packaged builders read (01_prepare_data)
    data_tag: str = "default"  # the instruction set's build: <artifacts>/instructions/<language>/<data_tag>
    sources: list[str] = field(default_factory=lambda: ["packaged"])  # packaged | a builder | local:PATH | hf:ID
    max_per_source: int = 300  # examples kept per source (0 = all)
    chat_template: str = "model"  # model (the tokenizer's own) or chatml (for base models without one)
    mode: str = "lora"  # lora, lora_embeddings (LoRA + embeddings and head in full) or full
    lora_r: int | None = None  # LoRA rank; None = 32
    lora_alpha: int | None = None  # None = 16
    lora_dropout: float | None = None  # None = 0.05
    lora_target_modules: list[str] | None = None  # None = all-linear
    learning_rate: float = 1e-3  # peak rate after warmup
    lr_scheduler: str = "cosine"  # cosine, linear or constant_with_warmup
    warmup_ratio: float = 0.05  # fraction of the steps spent in warmup
    num_epochs: float = 1.0  # passes over the training examples when max_steps is 0
    max_steps: int = 0  # optimizer steps; 0 = num_epochs passes
    batch_size: int = 8  # examples per micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    max_length: int = 256  # tokens per example (prompt and answer, chat markup included)
    packing: str = "auto"  # auto (only with FlashAttention), true or false
    eval_steps: int = 0  # held-out completion loss every N steps (0 = before and after only)
    save_steps: int = 50  # checkpoint every N steps (0 = none, so no resume)
    log_steps: int = 10  # training loss logged every N steps
    heldout_examples: int = 64  # test-split examples scored before and after (loss and chrF)
    n_samples: int = 6  # generations shown before and after
    max_new_tokens: int = 48  # tokens generated per held-out prompt
    precision: str = "auto"  # auto (bf16 where supported), bf16 or fp32
    device: str = "auto"  # auto, cpu or cuda
    seed: int = 1234  # data order, split, adapter initialisation
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    def validate(self) -> None:
        check_language(self.language, TARGET_LANGUAGES)
        check_choice("mode", self.mode, INSTRUCTION_MODES)
        check_train_fields(self)
        check_lora_fields(self)
        if not self.sources:
            raise ParamsError("sources must name at least one source")
        check_choice("packing", self.packing, PACKING)
        check_choice("chat_template", self.chat_template, CHAT_TEMPLATES)
        check_positive("max_length", self.max_length)
        for key in ("max_per_source", "heldout_examples", "n_samples"):
            check_positive(key, getattr(self, key), allow_zero=True)
        check_positive("max_new_tokens", self.max_new_tokens)

    def inapplicable(self) -> set[str]:
        """lora_* fields mean nothing to full fine-tuning."""
        return set() if self.mode in LORA_MODES else set(LORA_FIELDS)

    def why_inapplicable(self) -> str:
        return f"mode {self.mode!r}, which trains no LoRA adapter"

    def lora_settings(self) -> dict[str, Any] | None:
        return lora_settings(self, LORA_MODES)


Params = InstructionTuningParams


@dataclass
class InstructionSetup:
    params: InstructionTuningParams
    run_dir: Path
    device: str
    precision: str
    tokenizer: Any
    trainable: Any  # lib.training.modes.TrainableModel
    train_dataset: Any  # prompt / completion rows (conversational)
    heldout_dataset: Any
    data_manifest: dict[str, Any]
    base_model: str  # the registry model at the root of the chain
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, Any]:
        return {"model": self.base_model, "language": self.params.language, "task": "instructions",
                "split": "test"}

    def summary(self) -> dict[str, Any]:
        p = self.params
        return {"model": p.model, "base_model": self.base_model, "mode": p.mode, "language": p.language,
                "device": self.device, "precision": self.precision, "lora": p.lora_settings(),
                "train_examples": len(self.train_dataset), "heldout_examples": len(self.heldout_dataset),
                "data_splits": self.data_manifest.get("splits", {}),
                "data_dropped": self.data_manifest.get("dropped", {}), "notes": self.notes + self.trainable.notes}


def instruction_data(params: InstructionTuningParams, log=print):
    """The instruction DatasetDict and its manifest: built once per (language, data_tag) and
    reused while the parameters and the corpus build are the same (rebuilt otherwise)."""
    from lib.instructions import build_instructions, load_instructions_manifest

    log(f"instruction set {params.language}/{params.data_tag} from {', '.join(params.sources)}")
    data = build_instructions(params.language, tag=params.data_tag, corpus_tag=params.corpus_tag,
                              sources=list(params.sources), seed=params.seed, max_per_source=params.max_per_source)
    return data, load_instructions_manifest(params.language, params.data_tag)


def prepare(params: InstructionTuningParams, run_dir: str | Path, log=print) -> InstructionSetup:
    """Every check and all loading; nothing trains yet."""
    from lib.models import check_compatible, check_context, load_tokenizer, resolve_device
    from lib.runs import base_model_of
    from lib.training import modes as M
    from lib.training.sft import ensure_chat_template

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(params.device)
    precision = M.resolve_precision(params.precision, device)
    check_context(params.model, max_length=params.max_length)
    tokenizer = load_tokenizer(params.model)
    ensure_chat_template(tokenizer, params.chat_template)
    data, manifest = instruction_data(params, log)
    columns = ["prompt", "completion"]
    train = data["train"].shuffle(seed=params.seed).select_columns(columns)
    heldout = data["test"].select_columns(columns)
    if params.heldout_examples:
        heldout = heldout.select(range(min(params.heldout_examples, len(heldout))))
    if len(train) == 0:
        raise TrainingSetupError(f"the instruction set {params.language}/{params.data_tag} has no train examples")
    trainable = M.load_trainable(params.model, params.mode, lora=params.lora_settings(), device=device,
                                 precision=precision)
    check_compatible(trainable.model, tokenizer, params.model)
    setup = InstructionSetup(params, run_dir, device, precision, tokenizer, trainable, train, heldout, manifest,
                             base_model_of(params.model))
    log(f"{params.model} [{params.mode}] on {len(train)} {params.language} instructions, {device}/{precision}")
    return setup


def heldout_scores(setup: InstructionSetup, trainer, *, stage: str, log=print) -> tuple[list[dict], list[str]]:
    """Completion loss (teacher-forced) and chrF of greedy answers on the held-out prompts."""
    from lib.generation import chat_generate
    from lib.tasks.metrics import chrf
    from lib.training.sft import completion_loss
    from lib.training.trainer import without_autocast

    if len(setup.heldout_dataset) == 0:
        return [], []
    start = time.perf_counter()
    losses = completion_loss(trainer)
    prompts = [row["prompt"] for row in setup.heldout_dataset]
    references = [row["completion"][0]["content"] for row in setup.heldout_dataset]
    with without_autocast(trainer.model) as model:
        answers = chat_generate(model, setup.tokenizer, prompts, max_new_tokens=setup.params.max_new_tokens)
    score = chrf(references, answers)
    n = len(references)
    rows = [setup.labels | {"stage": stage, "metric": metric, "value": float(value), "n": n}
            for metric, value in (("completion_loss", losses["completion_loss"]),
                                  ("completion_perplexity", losses["completion_perplexity"]), ("chrf", score))]
    log(f"{stage:6s} held-out: completion loss {losses['completion_loss']:.3f}, chrF {score:.1f} "
        f"({n} prompts, {time.perf_counter() - start:.0f} s)")
    return rows, answers


def make_trainer(setup: InstructionSetup):
    """The SFTTrainer, not trained yet; its evaluation set is the held-out split."""
    from lib.training.arguments import TrainSettings
    from lib.training.sft import build_trainer

    p = setup.params
    return build_trainer(setup.trainable, setup.tokenizer, setup.train_dataset, setup.heldout_dataset,
                         settings=TrainSettings.of(p), max_length=p.max_length, run_dir=setup.run_dir,
                         precision=setup.precision, device=setup.device, packing=p.packing)


def train(setup: InstructionSetup, trainer, log=print):
    from lib.training.sft import run_training

    return run_training(trainer, setup.run_dir, save_adapter=setup.trainable.peft_config is not None, log=log)


def finish(setup: InstructionSetup, outcome, log=print) -> tuple[list[dict[str, Any]], list[str], Path]:
    """Held-out scores of the tuned model, then the standalone checkpoint in <run_dir>/model."""
    from lib.training.modes import export_checkpoint

    rows, answers = heldout_scores(setup, outcome.trainer, stage="after", log=log)
    p = setup.params
    out = export_checkpoint(
        outcome.trainer.model, base_spec=p.model, mode=p.mode, adapter_dir=setup.run_dir / "adapter",
        out_dir=setup.run_dir / "model", tokenizer=setup.tokenizer,
        provenance={"stage": STAGE, "base_model": setup.base_model, "from": p.model, "mode": p.mode,
                    "language": p.language, "data_tag": p.data_tag, "lora": p.lora_settings(),
                    "run_dir": str(setup.run_dir)})
    log(f"standalone checkpoint: {out}")
    return rows, answers, out


def samples_table(setup: InstructionSetup, before: list[str], after: list[str]):
    """The first ``n_samples`` held-out prompts with the reference, the answer before and after."""
    import pandas as pd

    n = min(setup.params.n_samples, len(setup.heldout_dataset))
    rows = setup.heldout_dataset.select(range(n))
    return pd.DataFrame({
        "prompt": [r["prompt"][-1]["content"] for r in rows],
        "reference": [r["completion"][0]["content"] for r in rows],
        "before": before[:n], "after": after[:n]})


FIGURES: dict = {}  # its tables are shown in the notebook; no results/ figure
