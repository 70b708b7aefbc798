"""The optimisation parameters every training stage shares, checked once and turned into
trainer arguments in one place (TRL's ``SFTConfig`` or transformers' ``TrainingArguments``).

A stage's parameters cell -> ``TrainSettings.of(params)`` -> ``trainer_arguments`` ->
the trainer: every field below changes what trains, in every stage that has it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.params import DEVICES, PRECISIONS, SCHEDULERS, ParamsError, check_choice, check_positive


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of one run; a stage without a field gets the default here."""

    learning_rate: float
    num_epochs: float
    max_steps: int
    batch_size: int
    grad_accum: int
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_steps: int = 0
    save_steps: int = 0
    save_total_limit: int = 2
    log_steps: int = 10
    gradient_checkpointing: bool = False
    seed: int = 1234

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise ParamsError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ParamsError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not self.num_epochs > 0:
            raise ParamsError(f"num_epochs must be positive, got {self.num_epochs}")
        check_choice("lr_scheduler", self.lr_scheduler, SCHEDULERS)
        for key in ("batch_size", "grad_accum", "log_steps"):
            check_positive(key, getattr(self, key))
        for key in ("max_steps", "eval_steps", "save_steps", "weight_decay", "max_grad_norm", "save_total_limit"):
            check_positive(key, getattr(self, key), allow_zero=True)

    @classmethod
    def of(cls, params) -> TrainSettings:
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{n: getattr(params, n) for n in names if hasattr(params, n)})


def check_train_fields(params) -> None:
    """The checks of the shared fields, for a stage's ``validate()``."""
    check_choice("precision", params.precision, PRECISIONS)
    check_choice("device", params.device, DEVICES)
    TrainSettings.of(params)  # checks its own fields


def trainer_arguments(settings: TrainSettings, *, output_dir: Path, precision: str, device: str,
                      has_eval: bool = True, arguments_class: type | None = None, **specific: Any):
    """``arguments_class`` (default TRL's SFTConfig) with the shared fields from ``settings`` and
    the stage's own (packing, max_length, ...) from ``specific``."""
    if arguments_class is None:
        from trl import SFTConfig

        arguments_class = SFTConfig
    s = settings
    evaluate = has_eval and s.eval_steps > 0
    common = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum,
        # AdamW, linear warmup, then the chosen decay
        optim="adamw_torch",
        learning_rate=s.learning_rate,
        lr_scheduler_type=s.lr_scheduler,
        warmup_steps=s.warmup_ratio,  # a float below 1 is a fraction of the total steps
        weight_decay=s.weight_decay,
        max_grad_norm=s.max_grad_norm,
        max_steps=s.max_steps if s.max_steps > 0 else -1,
        num_train_epochs=s.num_epochs,
        bf16=precision == "bf16",  # autocast; the master weights stay float32
        fp16=False,
        use_cpu=device == "cpu",
        activation_checkpointing=s.gradient_checkpointing,  # transformers 5's name for it
        eval_strategy="steps" if evaluate else "no",
        eval_steps=s.eval_steps if evaluate else None,
        logging_steps=s.log_steps,
        logging_first_step=True,
        save_strategy="steps" if s.save_steps > 0 else "no",
        save_steps=s.save_steps if s.save_steps > 0 else 500,
        save_total_limit=s.save_total_limit or None,
        report_to=[],  # TensorBoard is added as an explicit callback writing to <run>/tb
        seed=s.seed,
        data_seed=s.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
        include_num_input_tokens_seen="non_padding",  # trained tokens, kept across resumes
    )
    return arguments_class(**(common | specific))
