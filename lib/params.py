"""Typed parameters for every notebook, resolved from defaults, a profile,
parameter files and command-line overrides, and validated before anything runs.

Each notebook has one dataclass here whose fields are exactly the names in the
notebook's ``parameters`` cell (a test keeps the two in step). Unknown keys
and wrong types are errors that name the key, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lib.paths import PARAMS_DIR
from lib.training.modes import LORA_DEFAULTS, LORA_MODES, MODES

LANGUAGES = ("pl", "tr", "ru", "en")
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")


class ParamsError(ValueError):
    """Parameters that cannot run; the message names the offending key."""


@dataclass
class PrepareDataParams:
    """01_prepare_data: build the cleaned, split corpus of one language."""

    language: str = "pl"  # pl, tr, ru or en
    corpus_tag: str = "default"  # corpora live in <artifacts>/corpora/<language>/<corpus_tag>
    # packaged | a source name | local:PATH | hf:ID[:CONFIG] | speakleash:NAME
    sources: list[str] = field(default_factory=lambda: ["packaged"])
    seed: int = 1234  # split seed
    validation_fraction: float = 0.05
    test_fraction: float = 0.05
    min_chars: int = 200  # documents shorter than this are dropped
    near_dup_threshold: float = 0.8  # MinHash Jaccard above which documents are near-duplicates
    max_docs_per_source: int = 0  # 0 = all; small values make tiny test corpora
    tokenizers: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma3-270m"])
    text_field: str = "text"  # the text column of hf: and local: jsonl/parquet sources
    n_samples: int = 3  # documents shown per split
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    def validate(self) -> None:
        _check_language(self.language)
        _check_fraction("validation_fraction", self.validation_fraction)
        _check_fraction("test_fraction", self.test_fraction)
        if self.validation_fraction + self.test_fraction >= 1:
            raise ParamsError("validation_fraction + test_fraction must be below 1")
        _check_positive("min_chars", self.min_chars, allow_zero=True)
        _check_positive("max_docs_per_source", self.max_docs_per_source, allow_zero=True)
        if not 0 < self.near_dup_threshold <= 1:
            raise ParamsError(f"near_dup_threshold must be in (0, 1], got {self.near_dup_threshold}")
        if not self.sources:
            raise ParamsError("sources must name at least one source")


@dataclass
class BaselineEvalParams:
    """02_baseline_eval: bits per character, perplexity and fertility of models."""

    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma3-270m"])
    language: str = "pl"  # the corpus language to evaluate on
    corpus_tag: str = "default"
    split: str = "test"  # train, validation or test
    max_chars: int = 60000  # characters of the split scored per model (0 = all)
    max_length: int = 1024  # tokens per window
    stride: int = 512  # new tokens per window
    batch_size: int = 8
    dtype: str = "float32"  # float32, bfloat16 or float16 (bf16 for 7B models on a GPU)
    device: str = "auto"  # auto (cuda when available), cpu or cuda
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    def validate(self) -> None:
        _check_language(self.language)
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("device", self.device, DEVICES)
        if not self.models:
            raise ParamsError("models must name at least one model")
        if self.split not in ("train", "validation", "test"):
            raise ParamsError(f"split must be train, validation or test, got {self.split!r}")
        _check_positive("max_chars", self.max_chars, allow_zero=True)
        _check_positive("max_length", self.max_length)
        _check_positive("stride", self.stride)
        _check_positive("batch_size", self.batch_size)
        if self.stride > self.max_length:
            raise ParamsError(f"stride ({self.stride}) must not exceed max_length ({self.max_length})")


@dataclass
class FiguresParams:
    """90_figures: every table and figure, from results/ only."""

    figures: list[str] = field(default_factory=lambda: ["all"])  # names from lib.figures, or all
    results_dir: str = ""  # empty = the repository's results/
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    def validate(self) -> None:
        if not self.figures:
            raise ParamsError("figures must name at least one figure (or 'all')")


# --- 03_lapt -------------------------------------------------------------------------

SCHEDULERS = ("cosine", "linear", "constant_with_warmup")
PRECISIONS = ("auto", "bf16", "fp32")
_LORA_FIELDS = {"lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout",
                "lora_target_modules": "target_modules"}


@dataclass
class LaptParams:
    """03_lapt: continued pre-training of one model on one language's corpus."""

    model: str = "smollm2-135m-instruct"  # registry name, run directory, local checkpoint or hub id
    language: str = "pl"  # the corpus language to adapt to: pl, tr, ru or en
    corpus_tag: str = "default"  # which build of the corpus (01_prepare_data's corpus_tag)
    mode: str = "lora"  # lora, qlora (CUDA only), lora_embeddings, embeddings or full
    lora_r: int | None = None  # LoRA rank; None = 32 in LoRA modes, and must stay None in others
    lora_alpha: int | None = None  # LoRA scale is alpha / r; None = 16
    lora_dropout: float | None = None  # dropout on the LoRA input; None = 0.05
    lora_target_modules: list[str] | None = None  # module names or [all-linear]; None = all-linear
    learning_rate: float = 3e-3  # peak rate, reached after warmup
    lr_scheduler: str = "cosine"  # decay after warmup: cosine, linear or constant_with_warmup
    warmup_ratio: float = 0.05  # fraction of the steps spent in linear warmup
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # gradient clipping
    block_size: int = 256  # tokens per packed training block
    batch_size: int = 8  # blocks per device per micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    max_steps: int = 0  # optimizer steps; 0 = num_epochs passes over the training tokens
    num_epochs: float = 1.0  # passes over the training tokens when max_steps is 0
    max_train_tokens: int = 120_000  # tokens taken from the train split, source-mixed (0 = all)
    precision: str = "auto"  # auto (bf16 where the hardware supports it), bf16 or fp32
    gradient_checkpointing: bool = False  # recompute activations: less memory, ~30% slower
    eval_steps: int = 20  # validation bpc every N optimizer steps (0 = only before/after)
    val_max_chars: int = 12000  # characters of the validation split scored at each evaluation
    save_steps: int = 20  # checkpoint every N optimizer steps (0 = none, so no resume)
    save_total_limit: int = 2  # checkpoints kept on disk
    log_steps: int = 10  # training loss logged every N optimizer steps
    test_max_chars: int = 60000  # characters of the target test split scored before and after
    english_max_chars: int = 30000  # characters of the English test split, for forgetting (0 = skip)
    english_corpus_tag: str = ""  # corpus_tag of the English corpus ("" = corpus_tag)
    eval_max_length: int = 1024  # tokens per scoring window
    eval_stride: int = 512  # new tokens per scoring window
    eval_batch_size: int = 8  # windows per scoring forward pass
    seed: int = 1234  # data order, adapter initialisation, dropout
    device: str = "auto"  # auto (cuda when available), cpu or cuda
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    def validate(self) -> None:
        _check_language(self.language)
        _check_choice("mode", self.mode, MODES)
        _check_choice("lr_scheduler", self.lr_scheduler, SCHEDULERS)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("device", self.device, DEVICES)
        _check_lora_fields(self, LORA_MODES)
        if self.mode == "qlora" and self.device == "cpu":
            raise ParamsError("mode qlora needs a CUDA GPU (bitsandbytes 4-bit NF4); on a CPU use mode lora")
        if not self.learning_rate > 0:
            raise ParamsError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ParamsError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ParamsError("weight_decay and max_grad_norm must be non-negative")
        if self.block_size < 2:
            raise ParamsError(f"block_size must be at least 2 tokens, got {self.block_size}")
        for key in ("batch_size", "grad_accum", "eval_max_length", "eval_stride", "eval_batch_size",
                    "log_steps"):
            _check_positive(key, getattr(self, key))
        for key in ("max_steps", "max_train_tokens", "eval_steps", "val_max_chars", "save_steps",
                    "save_total_limit", "test_max_chars", "english_max_chars"):
            _check_positive(key, getattr(self, key), allow_zero=True)
        if not self.num_epochs > 0:
            raise ParamsError(f"num_epochs must be positive, got {self.num_epochs}")
        if self.eval_stride > self.eval_max_length:
            raise ParamsError(f"eval_stride ({self.eval_stride}) must not exceed eval_max_length "
                              f"({self.eval_max_length})")

    def lora_settings(self) -> dict[str, Any] | None:
        """r, alpha, dropout, target_modules with the Curie defaults filled in (None outside LoRA modes)."""
        if self.mode not in LORA_MODES:
            return None
        return {name: getattr(self, key) if getattr(self, key) is not None else LORA_DEFAULTS[name]
                for key, name in _LORA_FIELDS.items()}


# --- 05_instruction_tuning and 06_task_tuning -----------------------------------------

SFT_MODES = ("lora", "full")
PACKING_CHOICES = ("auto", "true", "false")
CHAT_TEMPLATES = ("model", "chatml")
TUNING_ROUTES = ("none", "sft", "classifier")


def _check_lora_fields(p, lora_modes: tuple[str, ...]) -> None:
    """lora_* fields: only in LoRA modes, and sensible values (None means the Curie default)."""
    if p.mode not in lora_modes:
        given = [k for k in _LORA_FIELDS if getattr(p, k) is not None]
        if given:
            raise ParamsError(f"{', '.join(given)} set, but mode {p.mode!r} trains no LoRA adapter; "
                              f"remove them or use mode {' or '.join(lora_modes)}")
    if p.lora_r is not None:
        _check_positive("lora_r", p.lora_r)
    if p.lora_alpha is not None:
        _check_positive("lora_alpha", p.lora_alpha)
    if p.lora_dropout is not None and not 0 <= p.lora_dropout < 1:
        raise ParamsError(f"lora_dropout must be in [0, 1), got {p.lora_dropout}")
    if p.lora_target_modules is not None and not p.lora_target_modules:
        raise ParamsError("lora_target_modules must name at least one module (or all-linear)")


def _check_sft_fields(p) -> None:
    """Checks shared by the two SFT notebooks (fields of the same names)."""
    _check_language(p.language)
    _check_choice("mode", p.mode, SFT_MODES)
    _check_choice("precision", p.precision, PRECISIONS)
    _check_choice("device", p.device, DEVICES)
    _check_choice("lr_scheduler", p.lr_scheduler, SCHEDULERS)
    _check_lora_fields(p, ("lora",))
    if not p.learning_rate > 0:
        raise ParamsError(f"learning_rate must be positive, got {p.learning_rate}")
    if not 0 <= p.warmup_ratio < 1:
        raise ParamsError(f"warmup_ratio must be in [0, 1), got {p.warmup_ratio}")
    if not p.num_epochs > 0:
        raise ParamsError(f"num_epochs must be positive, got {p.num_epochs}")
    for key in ("batch_size", "grad_accum", "max_length", "log_steps"):
        _check_positive(key, getattr(p, key))
    for key in ("max_steps", "eval_steps", "save_steps"):
        _check_positive(key, getattr(p, key), allow_zero=True)


def _lora_settings(p) -> dict[str, Any] | None:
    if p.mode != "lora":
        return None
    return {name: getattr(p, key) if getattr(p, key) is not None else LORA_DEFAULTS[name]
            for key, name in _LORA_FIELDS.items()}


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
    mode: str = "lora"  # lora or full
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
        _check_sft_fields(self)
        if self.language == "en":
            raise ParamsError("instruction tuning builds data in pl, tr or ru, not en")
        if not self.sources:
            raise ParamsError("sources must name at least one source")
        _check_choice("packing", self.packing, PACKING_CHOICES)
        _check_choice("chat_template", self.chat_template, CHAT_TEMPLATES)
        for key in ("max_per_source", "heldout_examples", "n_samples"):
            _check_positive(key, getattr(self, key), allow_zero=True)
        _check_positive("max_new_tokens", self.max_new_tokens)

    def lora_settings(self) -> dict[str, Any] | None:
        return _lora_settings(self)


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
        _check_sft_fields(self)
        _check_choice("route", self.route, TUNING_ROUTES)
        _check_choice("eval_dtype", self.eval_dtype, DTYPES)
        if not self.chain or any(c.isspace() for c in self.chain):
            raise ParamsError(f"chain must be a label without spaces (base, t, c-i-t, ...), got {self.chain!r}")
        if not self.shots or any(k < 0 for k in self.shots):
            raise ParamsError(f"shots must be a non-empty list of numbers >= 0, got {self.shots}")
        for key in ("max_train_items", "max_items", "n_bootstrap"):
            _check_positive(key, getattr(self, key), allow_zero=True)
        from lib.tasks.offline import CLASSIFICATION_FAMILIES, OFFLINE

        family, _, language = self.task.partition(":")
        if family not in OFFLINE:
            raise ParamsError(f"task: unknown offline task {family!r}; known: {', '.join(OFFLINE)}")
        if language and language != self.language:
            raise ParamsError(f"task {self.task!r} is in {language}, but language is {self.language!r}")
        if self.language not in OFFLINE[family].languages:
            raise ParamsError(f"task {family!r} exists for {', '.join(OFFLINE[family].languages)}, "
                              f"not {self.language!r}")
        if self.route == "classifier" and family not in CLASSIFICATION_FAMILIES:
            raise ParamsError(f"route classifier trains a classification head; task {family!r} is not a "
                              "classification task (use route sft)")

    def lora_settings(self) -> dict[str, Any] | None:
        return _lora_settings(self)

    @property
    def task_family(self) -> str:
        return self.task.partition(":")[0]


# --- 08_evaluate ---------------------------------------------------------------------

SAMPLING = ("shared", "per_item")


@dataclass
class EvaluateParams:
    """08_evaluate: models x tasks, zero- and few-shot, into a tidy table with chance and CIs."""

    # registry names, run directories, local paths or hub ids
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma3-270m"])
    language: str = "pl"  # language of the tasks named without one ("offline", a family name)
    tasks: list[str] = field(default_factory=lambda: ["offline"])  # offline | hub | a family | family:language
    shots: list[int] = field(default_factory=lambda: [0, 3])  # numbers of few-shot examples
    corpus_tag: str = "default"  # which corpus build the offline tasks come from (01_prepare_data)
    max_items: int = 500  # cap on evaluated items per task (a fixed hashed subset); 0 means all
    fewshot_sampling: str = "shared"  # shared: one draw per task; per_item: one draw per item
    seed: int = 1234  # few-shot draw
    max_batch_tokens: int = 4096  # tokens per forward pass (several items share one)
    n_bootstrap: int = 1000  # bootstrap resamples for the confidence intervals
    hub_data_dir: str = ""  # local copies of hub datasets (<dir>/<owner>__<name>[/<config>]); empty means the hub
    dtype: str = "float32"  # float32, bfloat16 or float16 (bfloat16 for 7B models on a GPU)
    device: str = "auto"  # auto (cuda when available), cpu or cuda
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    def validate(self) -> None:
        if self.language not in LANGUAGES:
            raise ParamsError(f"unknown language {self.language!r}; known: {', '.join(LANGUAGES)}")
        if not self.models:
            raise ParamsError("models must name at least one model")
        if not self.tasks:
            raise ParamsError("tasks must name at least one task (or 'offline')")
        if not self.shots or any(k < 0 for k in self.shots):
            raise ParamsError(f"shots must be a non-empty list of numbers >= 0, got {self.shots}")
        if len(set(self.shots)) != len(self.shots):
            raise ParamsError(f"shots has duplicates: {self.shots}")
        if self.max_items < 0:
            raise ParamsError(f"max_items must be non-negative, got {self.max_items}")
        if self.fewshot_sampling not in SAMPLING:
            raise ParamsError(f"fewshot_sampling must be one of {', '.join(SAMPLING)}, "
                              f"got {self.fewshot_sampling!r}")
        if self.max_batch_tokens < 64:
            raise ParamsError(f"max_batch_tokens must be at least 64, got {self.max_batch_tokens}")
        if self.n_bootstrap < 0:
            raise ParamsError(f"n_bootstrap must be non-negative, got {self.n_bootstrap}")
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("device", self.device, DEVICES)
        from lib.tasks.base import TaskError
        from lib.tasks.evaluate_models import resolve_task_ids

        try:
            resolve_task_ids(self.tasks, self.language)
        except TaskError as exc:
            raise ParamsError(f"tasks: {exc}") from exc


STAGES: dict[str, type] = {
    "01_prepare_data": PrepareDataParams,
    "02_baseline_eval": BaselineEvalParams,
    "03_lapt": LaptParams,
    "05_instruction_tuning": InstructionTuningParams,
    "06_task_tuning": TaskTuningParams,
    "08_evaluate": EvaluateParams,
    "90_figures": FiguresParams,
}


def stage_of(notebook: str | Path) -> str:
    """'notebooks/01_prepare_data.ipynb' -> '01_prepare_data', checked against STAGES."""
    stem = Path(notebook).stem
    if stem not in STAGES:
        raise ParamsError(f"unknown notebook {notebook!r}; known: {', '.join(STAGES)}")
    return stem


def known_profiles() -> list[str]:
    return sorted(p.stem for p in (PARAMS_DIR / "profiles").glob("*.yaml"))


def load_profile(name: str) -> dict[str, dict[str, Any]]:
    path = PARAMS_DIR / "profiles" / f"{name}.yaml"
    if not path.is_file():
        raise ParamsError(f"unknown profile {name!r}; known: {', '.join(known_profiles())}")
    data = _read_yaml(path)
    for section in data:
        if section not in STAGES:
            raise ParamsError(f"profile {name!r} has a section for unknown notebook {section!r}")
    return data


def resolve(stage: str, *, profile: str | None = None, files: list[str | Path] = (),
            overrides: dict[str, Any] | None = None):
    """Defaults < profile section < parameter files (in order) < overrides."""
    cls = STAGES[stage_of(stage)]
    merged: dict[str, Any] = {}
    if profile:
        merged.update(load_profile(profile).get(stage_of(stage), {}) or {})
    for path in files:
        merged.update(_read_yaml(Path(path)))
    merged.update(overrides or {})
    return build(cls, merged)


def build(cls: type, values: dict[str, Any]):
    """Construct ``cls`` from ``values``, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ParamsError(
            f"unknown parameter(s) {', '.join(unknown)} for {cls.__name__}; "
            f"known: {', '.join(names)}"
        )
    checked = {key: _coerce(key, value, hints[key]) for key, value in values.items()}
    params = cls(**checked)
    params.validate()
    return params


def as_dict(params) -> dict[str, Any]:
    return dataclasses.asdict(params)


def parse_override(text: str) -> tuple[str, Any]:
    """'key=value' with the value read as YAML, so 3 is an int and [a, b] a list."""
    if "=" not in text:
        raise ParamsError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (list, typing.List):  # noqa: UP006
        (item_type,) = typing.get_args(hint)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ParamsError(f"parameter {key!r} must be a list of {item_type.__name__}, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, item_type) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(key, value, option)
            except ParamsError:
                continue
        raise ParamsError(f"parameter {key!r} has the wrong type: {value!r}")
    if hint is type(None):
        if value is None:
            return None
        raise ParamsError(f"parameter {key!r} must be None")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise ParamsError(f"parameter {key!r} must be {hint.__name__}, got a boolean")
    if not isinstance(value, hint):
        raise ParamsError(
            f"parameter {key!r} must be {hint.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ParamsError(f"parameter file {path} does not exist")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"parameter file {path} must hold a mapping of key: value")
    return data


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise ParamsError(f"unknown language {language!r}; known: {', '.join(LANGUAGES)}")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ParamsError(f"{key} must be one of {', '.join(choices)}, got {value!r}")


def _check_fraction(key: str, value: float) -> None:
    if not 0 < value < 1:
        raise ParamsError(f"{key} must be between 0 and 1, got {value}")


def _check_positive(key: str, value: int, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ParamsError(f"{key} must be {'non-negative' if allow_zero else 'positive'}, got {value}")


def from_namespace(stage: str, namespace: dict[str, Any]):
    """Validate a notebook's parameters cell: pick its stage's fields out of globals()."""
    cls = STAGES[stage_of(stage)]
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in namespace]
    if missing:
        raise ParamsError(f"the parameters cell of {stage} lacks {', '.join(missing)}")
    return build(cls, {n: namespace[n] for n in names})

