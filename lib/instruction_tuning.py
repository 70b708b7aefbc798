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

from lib import params as P
from lib.params import InstructionTuningParams
from lib.training import TrainingSetupError

STAGE = "05_instruction_tuning"


def from_namespace(namespace: dict[str, Any]) -> InstructionTuningParams:
    return P.from_namespace(STAGE, namespace)


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
    from lib.models import check_compatible, load_tokenizer
    from lib.runs import base_model_of
    from lib.training import modes as M
    from lib.training.sft import ensure_chat_template

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = M.resolve_device(params.device)
    precision = M.resolve_precision(params.precision, device)
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


def chat_generate(model, tokenizer, conversations: list[list[dict[str, str]]], *, max_new_tokens: int,
                  batch_size: int = 16) -> list[str]:
    """Greedy answers to chat prompts, rendered with the tokenizer's chat template."""
    import torch

    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outputs: list[str] = []
    model.eval()
    with torch.inference_mode():
        for first in range(0, len(texts), batch_size):
            encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts[first:first + batch_size]]
            width = max(map(len, encoded))
            # left padding: every prompt ends where generation starts
            ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
            attention = torch.zeros_like(ids)
            for b, seq in enumerate(encoded):
                ids[b, width - len(seq):] = torch.tensor(seq)
                attention[b, width - len(seq):] = 1
            new = model.generate(input_ids=ids.to(device), attention_mask=attention.to(device),
                                 max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id)
            outputs += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in new]
    return outputs


def make_trainer(setup: InstructionSetup):
    """The SFTTrainer, not trained yet; its evaluation set is the held-out split."""
    from lib.training.sft import build_trainer

    return build_trainer(setup.trainable, setup.tokenizer, setup.train_dataset, setup.heldout_dataset,
                         settings=settings_of(setup.params), run_dir=setup.run_dir, precision=setup.precision,
                         device=setup.device, packing=setup.params.packing)


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


def settings_of(params) -> Any:
    from lib.training.sft import SftSettings

    return SftSettings(
        learning_rate=params.learning_rate, num_epochs=params.num_epochs, max_steps=params.max_steps,
        batch_size=params.batch_size, grad_accum=params.grad_accum, max_length=params.max_length,
        lr_scheduler=params.lr_scheduler, warmup_ratio=params.warmup_ratio, eval_steps=params.eval_steps,
        save_steps=params.save_steps, log_steps=params.log_steps, seed=params.seed)
