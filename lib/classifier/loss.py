"""The classifier's loss: cross-entropy weighted against class imbalance, and the Trainer that uses it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers import Trainer

from lib import progress


def class_weights(labels: Sequence[int], n_classes: int) -> list[float]:
    """Balanced weights ``n_samples / (n_present_classes * count_c)``; 0 for a class absent from ``labels``.

    The same values as scikit-learn's ``compute_class_weight("balanced")`` over the
    classes present (a class seen half as often as average weighs 2).
    """
    counts = Counter(int(label) for label in labels)
    outside = sorted(c for c in counts if not 0 <= c < n_classes)
    if outside:
        raise ValueError(f"labels {outside} are outside the {n_classes} classes")
    if not counts:
        raise ValueError("class weights need at least one label")
    n, present = sum(counts.values()), len(counts)
    return [n / (present * counts[c]) if counts[c] else 0.0 for c in range(n_classes)]


def classification_loss(logits: torch.Tensor, labels: torch.Tensor,
                        weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy in float32; with ``weights`` PyTorch's weighted mean (sum of w_y * nll / sum of w_y)."""
    return F.cross_entropy(logits.float(), labels, weight=weights)


class ClassifierTrainer(Trainer):
    """Trainer whose loss is (class-weighted) cross-entropy over the head's logits.

    TRL's SFTTrainer cannot be used here: it trains a causal language model on
    text (token-level loss through the LM head) and has no notion of a
    classification head and one label per sequence.
    """

    def __init__(self, *args, class_weights: Sequence[float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(progress.trainer_callback())  # steps on the terminal of `python -m lib run`
        self.class_weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it for gradient accumulation

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs, use_cache=False)
        weights = None if self.class_weights is None else self.class_weights.to(outputs.logits.device)
        loss = classification_loss(outputs.logits, labels, weights)
        return (loss, outputs) if return_outputs else loss
