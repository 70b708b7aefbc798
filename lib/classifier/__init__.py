"""06_task_tuning, classifier route: a sequence-classification head with class-weighted cross-entropy.

Curie-7B fine-tunes its adapted model on KLEJ with a classification head and
cross-entropy weighted against class imbalance. Here that is
``AutoModelForSequenceClassification`` (a linear ``score`` head on the hidden
state of the last non-padding token, as Llama-family classifiers do) trained
with LoRA on every linear layer and the head trained fully, or with every
weight trained (``mode="full"``).

Choices, so that the numbers can be read next to the prompting benchmark
(``lib.tasks.evaluation``):

- Input text: by default the item's raw ``text`` field (the paragraph), not the
  prompt of the zero-/few-shot benchmark: the head learns the task from the
  labels, and the prompt's question line is the same for every item and was
  written for scoring answers with the language model. ``inputs="prompt"``
  feeds ``task.prompt.query(item)`` instead (needed for tasks without a single
  ``text`` field, e.g. sentence pairs).
- Rows: the benchmark's long format, with ``n_shot = 0`` (the classifier sees
  one item and no solved examples; an integer keeps the column's type) and
  ``route = "classifier"`` to tell these rows from prompting rows, plus
  ``loss = "weighted" | "unweighted"`` and ``mode``. The evaluated items are the
  same hashed subset (``max_eval_items``), and ``chance`` and ``majority``
  (always answering the most frequent label of the evaluated items) are
  computed as there; evaluation runs in float32, like the benchmark.
- Class weights are "balanced" (scikit-learn's ``compute_class_weight``);
  a class with no training item gets weight 0 (it never occurs as a training
  target, so its weight changes nothing; the run logs a note) instead of an
  error, so a small ``max_train_items`` cap still trains.

The items it trains on are ``Task.train_items`` (the same subset the task-SFT
route trains on), and its optimisation settings are the stage's shared
``TrainSettings`` (``lib.training.arguments``): every one of them is honoured.

Modules: ``loss`` (class weights, the weighted loss, the Trainer), ``data`` (texts
and tokens), ``model`` (loading, LoRA, float32 prediction), ``train``
(``train_classifier`` and its rows).
"""

from lib.classifier.data import INPUTS, classifier_texts, token_dataset
from lib.classifier.loss import ClassifierTrainer, class_weights, classification_loss
from lib.classifier.model import HEAD, load_classifier, lora_settings, predict_logits
from lib.classifier.train import N_SHOT, ClassifierResult, classifier_rows, train_classifier

__all__ = ["HEAD", "INPUTS", "N_SHOT", "ClassifierResult", "ClassifierTrainer", "class_weights",
           "classification_loss", "classifier_rows", "classifier_texts", "load_classifier", "lora_settings",
           "predict_logits", "token_dataset", "train_classifier"]
