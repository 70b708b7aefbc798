"""Supervised fine-tuning on prompt -> completion examples with TRL's SFTTrainer.

Shared by instruction tuning (05: chat-format examples, the model's chat
template) and task tuning (06: a task's own plain-text prompt and answer).
Either way the loss is on the completion tokens only (TRL's
``completion_only_loss``): the model learns to answer, not to reproduce the
prompt, which LlamaTurk and Alpaca-style tuning do as well.

Packing: TRL's ``bfd`` packing puts several examples in one row and keeps them
apart with position ids, which only FlashAttention honours. With SDPA or eager
attention (every CPU) packed examples would attend to each other, so
``packing="auto"`` packs only where the model runs FlashAttention; elsewhere
examples are padded per batch (``padding_free`` is off for the same reason).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.training import TrainingSetupError

PACKING = ("auto", "true", "false")
CHAT_TEMPLATES = ("model", "chatml")  # the tokenizer's own, or ChatML for base models without one
FLASH_ATTENTION = ("flash_attention_2", "flash_attention_3", "kernels-community/flash-attn")

# A ChatML template for models without one (base models from the hub); the same
# markup SmolLM2 and Qwen use. ``{% generation %}`` is not needed: the loss mask
# comes from the prompt/completion split, not from the template.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def use_packing(packing: str, model) -> bool:
    """Whether examples may share a row (see the module docstring)."""
    if packing not in PACKING:
        raise TrainingSetupError(f"packing must be one of {', '.join(PACKING)}, got {packing!r}")
    flash = getattr(model.config, "_attn_implementation", None) in FLASH_ATTENTION
    if packing == "true" and not flash:
        raise TrainingSetupError(
            "packing=true needs FlashAttention (attn_implementation flash_attention_2): with "
            f"{getattr(model.config, '_attn_implementation', None)!r} attention packed examples would "
            "attend to each other; use packing=auto or false")
    return flash and packing != "false"


def ensure_chat_template(tokenizer, chat_template: str) -> str:
    """The tokenizer's own chat template, or ChatML when asked; an error when there is none."""
    if chat_template == "model":
        if not getattr(tokenizer, "chat_template", None):
            raise TrainingSetupError(
                "the model's tokenizer has no chat template (a base model?); set chat_template=chatml "
                "to train with ChatML markup, or start from an instruct model")
        return "model"
    if chat_template == "chatml":
        tokenizer.chat_template = CHATML_TEMPLATE
        return "chatml"
    raise TrainingSetupError(f"chat_template must be 'model' or 'chatml', got {chat_template!r}")


def sft_arguments(settings, *, max_length: int, output_dir: Path, precision: str, device: str, packing: bool,
                  has_eval: bool):
    """SFTConfig for prompt/completion rows (loss on the completion only)."""
    from lib.training.arguments import trainer_arguments

    return trainer_arguments(
        settings, output_dir=output_dir, precision=precision, device=device, has_eval=has_eval,
        max_length=max_length,  # longer examples lose their end (TRL keep_start); one left all prompt is dropped
        packing=packing, packing_strategy="bfd", padding_free=False, completion_only_loss=True)


@dataclass
class SftOutcome:
    trainer: Any
    train_metrics: dict[str, Any]
    history: Any  # pandas.DataFrame, one row per logged step
    resumed_from: str | None


def build_trainer(trainable, tokenizer, train_dataset, eval_dataset, *, settings, max_length: int, run_dir: Path,
                  precision: str, device: str, packing: str = "auto"):
    """An SFTTrainer for ``trainable`` (a ``lib.training.modes.TrainableModel``) on prompt/completion
    rows, not trained yet: held-out scores of the untuned model can be taken through it first
    (a fresh LoRA adapter changes nothing until it trains)."""
    from lib.training.trainer import CausalLmSFTTrainer, tensorboard_callback, use_fused_lm_head

    if len(train_dataset) == 0:
        raise TrainingSetupError("no training examples")
    config = sft_arguments(settings, max_length=max_length, output_dir=Path(run_dir) / "checkpoints",
                           precision=precision, device=device, packing=use_packing(packing, trainable.model),
                           has_eval=eval_dataset is not None)
    return CausalLmSFTTrainer(
        model=trainable.model, args=config, train_dataset=train_dataset, eval_dataset=eval_dataset,
        processing_class=tokenizer, peft_config=trainable.peft_config,
        callbacks=[tensorboard_callback(Path(run_dir) / "tb")], fused_lm_head=use_fused_lm_head(device))


def run_training(trainer, run_dir: Path, *, save_adapter: bool, log=print) -> SftOutcome:
    """Train (resuming from ``<run_dir>/checkpoints`` when a checkpoint is there); save the adapter."""
    from lib.training.modes import parameter_counts
    from lib.training.trainer import finished_checkpoint, history_table, last_checkpoint, load_finished

    resume = last_checkpoint(Path(run_dir) / "checkpoints")
    counts = parameter_counts(trainer.model)
    log(f"trainable parameters: {counts['trainable_params']:,} of {counts['total_params']:,} "
        f"({100 * counts['trainable_fraction']:.2f}%); {len(trainer.train_dataset)} examples"
        + (f"; resuming from {resume}" if resume else ""))
    start = time.perf_counter()
    if finished_checkpoint(resume):
        load_finished(trainer, resume)
        metrics: dict[str, Any] = {}
    else:
        metrics = trainer.train(resume_from_checkpoint=resume).metrics
    wall = time.perf_counter() - start
    if save_adapter:
        trainer.save_model(str(Path(run_dir) / "adapter"))
    history = history_table(trainer.state.log_history)
    history.to_csv(Path(run_dir) / "train_log.csv", index=False)
    metrics = {**metrics, **counts, "wall_seconds": round(wall, 1), "global_step": trainer.state.global_step,
               "tokens_seen": trainer.state.num_input_tokens_seen}
    log(f"trained {trainer.state.global_step} steps, {trainer.state.num_input_tokens_seen} tokens in {wall:.0f} s")
    return SftOutcome(trainer, metrics, history, resume)


def completion_loss(trainer) -> dict[str, float]:
    """Mean negative log-likelihood (nats per completion token) of the trainer's held-out
    examples (its ``eval_dataset``), and the perplexity that goes with it."""
    import math

    from lib.training.trainer import without_autocast

    with without_autocast(trainer.model):
        metrics = trainer.evaluate()
    loss = float(metrics["eval_loss"])
    return {"completion_loss": loss, "completion_perplexity": math.exp(min(loss, 50.0))}
