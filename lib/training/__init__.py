"""Training building blocks shared by the training stages (03, 05, 06; later 04 and 07).

One concern per module:

- ``arguments``: the optimisation parameters every stage shares, checked once,
  and the one builder of trainer arguments (TRL's SFTConfig or TrainingArguments);
- ``lora``: LoRA settings from a stage's parameters and the one LoraConfig builder;
- ``modes``: the model made trainable per mode (LoRA, QLoRA, LoRA + embeddings,
  embeddings only, full), checked before anything trains, and merged afterwards;
- ``data``: corpus documents -> token sequences joined by the document separator;
- ``trainer``: TRL's SFTTrainer configured for packed raw-text training, with
  validation bits per character, checkpoints, exact resume and TensorBoard logs;
- ``sft``: SFTTrainer on prompt/completion rows, loss on the answer only;
- ``scoring``: before/after bits per character and perplexity as tidy rows.
"""

from __future__ import annotations


class TrainingSetupError(ValueError):
    """Input that cannot train (model, corpus, hardware); raised before training starts."""
