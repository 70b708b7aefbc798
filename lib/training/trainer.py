"""TRL's SFTTrainer set up for continued pre-training on raw text.

- Packing: ``packing_strategy="wrapped"`` concatenates the pre-tokenised
  documents (each with its separator, see ``lib.training.data``) and cuts the
  stream into blocks of exactly ``block_size`` tokens: no padding. (The default
  ``bfd`` strategy keeps documents apart with position ids, which only
  FlashAttention honours; on a CPU or with SDPA it would silently let packed
  documents attend to each other, so wrapped is also the honest choice.)
- Validation: every ``eval_steps`` optimizer steps the trainer scores held-out
  documents with ``lib.lm_metrics.score_texts`` and logs ``eval_bpc``, the same
  bits per character as the before/after table, instead of the packed-block
  loss (tokens of different tokenizers are not comparable; characters are).
- Checkpoints under ``<run>/checkpoints`` (model, optimizer, scheduler, RNG
  states, data position), so a killed run resumes exactly; TensorBoard events
  under ``<run>/tb``; a progress bar from the Trainer.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transformers import Trainer
from trl import SFTConfig, SFTTrainer

from lib import progress
from lib.lm_metrics import score_texts


@contextmanager
def without_autocast(model):
    """Run ``model`` with the forward it had before accelerate wrapped it in bf16 autocast.

    Scores must be float32 like the before/after table: on SmolLM2-135M, bf16
    autocast alone moves bits per character by about 0.02.
    """
    original = model.__dict__.get("_original_forward")
    if original is None:
        yield model
        return
    wrapped = model.forward
    model.forward = original
    try:
        yield model
    finally:
        model.forward = wrapped


def use_fused_lm_head(device: str) -> bool:
    """TRL's fused LM head never builds the [tokens x vocab] logits: a memory win on GPUs, where
    Triton folds each tile. On a CPU its fallback recomputes the projection in the backward and
    runs the gradient matmuls in float32 (no bf16 AMX), which scripts/bench_lapt_throughput.py
    measured slower than plain logits; the CPU uses the model's own loss instead."""
    return device != "cpu"


class CausalLmSFTTrainer(SFTTrainer):
    """SFTTrainer that can skip TRL's fused LM head.

    ``fused_lm_head=False`` computes the loss the way transformers' Trainer does
    (the model's forward with labels, full logits; tokens labelled -100, such as
    prompts under ``completion_only_loss``, are ignored); see ``use_fused_lm_head``.
    """

    def __init__(self, *args, fused_lm_head: bool = True, **kwargs):
        self.fused_lm_head = fused_lm_head
        super().__init__(*args, **kwargs)
        self.add_callback(progress.trainer_callback())  # steps on the terminal of `python -m lib run`

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.fused_lm_head:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = {k: v for k, v in inputs.items() if k != "completion_mask"} | {"use_cache": False}
        return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)


class BpcTrainer(CausalLmSFTTrainer):
    """SFTTrainer whose evaluation is bits per character of held-out documents."""

    def __init__(self, *args, bpc_texts: list[str], bpc_settings: dict[str, int], **kwargs):
        self.bpc_texts = bpc_texts
        self.bpc_settings = bpc_settings
        super().__init__(*args, **kwargs)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        if not self.is_world_process_zero() and self.args.world_size > 1:
            # every rank would score the same documents; rank 0 does it, the others wait below
            metrics: dict[str, float] = {}
        else:
            with without_autocast(self.model) as model:
                score = score_texts(model, self.processing_class, self.bpc_texts, **self.bpc_settings)
            metrics = {
                f"{metric_key_prefix}_bpc": score.bits_per_char,
                f"{metric_key_prefix}_loss": score.nll_per_token,  # nats per token
                f"{metric_key_prefix}_perplexity": score.perplexity,
            }
        self.accelerator.wait_for_everyone()
        if metrics:
            self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def packed_text_arguments(settings, *, output_dir: Path, block_size: int, precision: str, device: str,
                          eval_on_start: bool) -> SFTConfig:
    """SFTConfig for raw text: pre-tokenised documents packed into fixed blocks (module docstring)."""
    from lib.training.arguments import trainer_arguments

    return trainer_arguments(
        settings, output_dir=output_dir, precision=precision, device=device,
        packing=True, packing_strategy="wrapped", max_length=block_size,
        shuffle_dataset=False,  # the sampler shuffles the blocks every epoch
        eval_on_start=eval_on_start and settings.eval_steps > 0)


def tensorboard_callback(logging_dir: Path):
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(logging_dir)))


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest complete checkpoint under ``output_dir``, or None.

    A run killed while it saved leaves a ``checkpoint-N`` without its
    ``trainer_state.json`` (the Trainer writes that file last); resuming from it
    would fail, so it is removed and the one before it is taken.
    """
    import shutil

    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    if not Path(output_dir).is_dir():
        return None
    numbered = [(int(p.name.rsplit("-", 1)[1]), p) for p in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")
                if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit()]
    for _, path in sorted(numbered, reverse=True):
        if (path / "trainer_state.json").is_file():
            return str(path)
        shutil.rmtree(path)  # half-written by a killed run
    return None


def finished_checkpoint(path: str | None) -> bool:
    """Whether ``path`` is the last step of its run (resuming it would take one step too many)."""
    from transformers import TrainerState

    if not path or not (Path(path) / "trainer_state.json").is_file():
        return False
    state = TrainerState.load_from_json(str(Path(path) / "trainer_state.json"))
    return state.max_steps > 0 and state.global_step >= state.max_steps


def load_finished(trainer, path: str) -> None:
    """Put a finished run's weights and state into ``trainer`` without training again."""
    from transformers import TrainerState

    trainer._load_from_checkpoint(path)  # the same loader Trainer.train uses when it resumes
    trainer.state = TrainerState.load_from_json(str(Path(path) / "trainer_state.json"))


def planned_steps(n_tokens: int, block_size: int, batch_size: int, grad_accum: int, world_size: int,
                  max_steps: int, num_epochs: float) -> int:
    """About the optimizer steps the run will take (shown before training starts)."""
    if max_steps > 0:
        return max_steps
    batches = math.ceil(math.ceil(n_tokens / block_size) / (batch_size * world_size))
    return max(1, math.ceil(max(1, batches // grad_accum) * num_epochs))


def history_table(log_history: list[dict[str, Any]]):
    """The trainer's log as a frame: one row per logged step (train loss, lr, eval_bpc)."""
    import pandas as pd

    frame = pd.DataFrame(log_history)
    if frame.empty:
        return frame
    return frame.groupby("step", as_index=False).first()
