"""The sequence classifier: loaded on any causal LM checkpoint, made trainable (LoRA or full), run in float32."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lib.training import TrainingSetupError

HEAD = "score"  # the head of Llama-family sequence classifiers, which PEFT's SEQ_CLS trains fully


def load_classifier(model_spec: str, classes: Sequence[str], *, mode: str = "lora",
                    lora: dict[str, Any] | None = None, seed: int = 1234):
    """(model, tokenizer, notes): a float32 sequence classifier on ``model_spec`` made trainable per ``mode``.

    ``lora`` mode wraps it in PEFT (``task_type="SEQ_CLS"``): adapters on every linear
    layer but the head, the head itself trained fully (PEFT's ``modules_to_save``).
    """
    from transformers import AutoModelForSequenceClassification, set_seed

    from lib.models import check_compatible, load_tokenizer, resolve
    from lib.training.modes import TUNING_MODES, parameter_counts

    if mode not in TUNING_MODES:
        raise TrainingSetupError(f"unknown mode {mode!r} for the classifier; choose {' or '.join(TUNING_MODES)}")
    tokenizer = load_tokenizer(model_spec)
    notes: list[str] = []
    if tokenizer.pad_token is None:  # batches are padded; Llama's classifier finds the last non-pad token
        tokenizer.pad_token = tokenizer.eos_token
        notes.append("tokenizer has no pad token: padding with its eos token")
    set_seed(seed)  # the new head (and the LoRA A matrices) start from random values
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve(model_spec), num_labels=len(classes), id2label=dict(enumerate(classes)),
        label2id={name: i for i, name in enumerate(classes)}, problem_type="single_label_classification",
        dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    check_compatible(model, tokenizer, model_spec)
    if getattr(model.config, "tie_word_embeddings", False):
        # The causal LM's output head is its input embedding matrix; the classifier has no output
        # embeddings (the new `score` head replaces them), so nothing is tied and nothing breaks.
        notes.append("base model ties its embeddings; the classifier replaces the LM head by a new score head")
    if mode == "full":
        for param in model.parameters():
            param.requires_grad_(True)
    else:
        from peft import get_peft_model

        from lib.training.lora import lora_config

        # SEQ_CLS: PEFT trains the head ("score"/"classifier") fully
        model = get_peft_model(model, lora_config(lora_settings(lora), task_type="SEQ_CLS"))
        if not any("modules_to_save" in name and p.requires_grad for name, p in model.named_parameters()):
            raise TrainingSetupError(f"PEFT found no classification head to train in {model_spec} "
                                     "(it looks for a module named 'score' or 'classifier')")
    counts = parameter_counts(model)
    notes.append(f"{mode}: {counts['trainable_params']:,} of {counts['total_params']:,} parameters train")
    return model, tokenizer, notes


def lora_settings(lora: dict[str, Any] | None) -> dict[str, Any]:
    """Curie's LoRA defaults updated by ``lora``; unknown keys and a LoRA on the head are errors."""
    from lib.training.lora import LORA_DEFAULTS

    unknown = sorted(set(lora or {}) - set(LORA_DEFAULTS))
    if unknown:
        raise TrainingSetupError(f"unknown LoRA setting(s) {', '.join(unknown)}; known: {', '.join(LORA_DEFAULTS)}")
    settings = {**LORA_DEFAULTS, **(lora or {})}
    targets = settings["target_modules"]
    if isinstance(targets, str):
        targets = settings["target_modules"] = [targets]
    if HEAD in targets:
        raise TrainingSetupError(f"{HEAD!r} is the classification head, which trains fully; it cannot take a LoRA")
    if "all-linear" in targets and len(targets) > 1:
        raise TrainingSetupError("'all-linear' cannot be combined with other target modules")
    return settings


@torch.no_grad()
def predict_logits(model, tokenizer, texts: Sequence[str], *, batch_size: int = 8,
                   max_length: int = 256) -> np.ndarray:
    """Float32 logits [items x classes], in batches padded like training (no autocast)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start:start + batch_size]), truncation=True, max_length=max_length,
                          padding=True, return_tensors="pt").to(device)
        out.append(model(**batch, use_cache=False).logits.float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.num_labels), dtype=np.float32)
