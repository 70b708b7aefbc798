"""07_lep_propagate: Learned Embedding Propagation into an instruct model (the LEP paper's method).

A base model S gets a new vocabulary and trained embeddings: the donor D (a
``04_vocab_adapt`` run, usually trained by ``03_lapt`` in ``embeddings`` mode). Those
embeddings go into S's instruct model T without any instruction tuning of the adapted model:
T's new matrix is D's times a d x d map P fitted between S's and T's old embeddings
(``lib.lep``). The steps, which the notebook calls one by one::

    setup = prepare(params, run_dir)     # S, T, D and their tokenizers; every check first
    pairs = calibration_data(setup)      # calibrate=True: T answers the calibration prompts
    model, tokenizer, report = propagate(setup)   # P fitted per matrix; the checkpoint written; S, D released
    trainer = calibration_trainer(setup, pairs)   # calibrate=True: LoRA on T's answers (SFT of 05)
    calibration = calibrate(setup, trainer)       # trained (resumed), merged into <run>/model
    rows = score(setup, model, tokenizer, calibration)  # bits per character, chars/token

Modes (``mode``, registered in ``lib.lep.MODES``): ``conversion`` (P fitted on every row of
the old matrices mapped onto the new vocabulary by sub-token means, as the authors' pipeline
does by default), ``overlap`` (P fitted on the tokens both vocabularies share), ``swap``
(P = I: D's embeddings copied). ``layer_deltas`` also adds D's layer changes (D minus S, a
donor trained with LoRA and embeddings) to T's layers.

Self-calibration (``calibrate=True``; ``lib.lep.calibration``), the paper's optional last step:
T itself (its original tokenizer and chat template) answers prompts greedily, before
propagation changes it: ``calibration_prompts`` per language of ``calibration_languages``
(``target``: the instruction set's train-split prompts; ``en``: English instructions over the
English side of its train-split translations), plus ``calibration_copy_examples`` paragraphs of
the corpus's train split to repeat verbatim. The pairs are recorded in
``<run>/calibration/pairs.jsonl`` (``pairs.json``: their settings and counts; a rerun with the
same settings reuses them). The propagated model is then tuned on them with a LoRA adapter
(``lora_*``, ``learning_rate``, ``max_steps``, ... as in 05), loss on the answer only, through
05's SFT path; checkpoints in ``<run>/calibration/checkpoints`` (a killed run resumes from the
last), the adapter, ``train_log.csv`` and TensorBoard events beside them.

Checkpoints: without calibration the propagated model is ``<run>/model``. With it, the run's
result (what later stages load from the run directory) is the calibrated model, adapter merged,
in ``<run>/model``, and the uncalibrated propagated model stays in ``<run>/propagated``.
``score`` covers T, the propagated and the calibrated model (``lep-<mode>-calibrated``).

The copy task and generation speed are measured by ``08_evaluate`` on the run's model. The whole
chain on Russian (S, T, donors, every mode, calibration, evaluation) is one sweep,
``params/sweeps/lep_chain_ru.yaml``; its table's figure (``lep_chain_ru``) is drawn here.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.models import free_memory
from lib.params import DEVICES, ParamsError, check_choice, check_language, check_positive
from lib.training.arguments import check_train_fields
from lib.training.lora import LORA_FIELDS, check_lora_fields, lora_values

STAGE = "07_lep_propagate"
MODEL_DIR = "model"  # the run's result
PROPAGATED_DIR = "propagated"  # the propagated model when calibration follows
CALIBRATION_DIR = "calibration"  # pairs, checkpoints, adapter, logs of the calibration
TRAIN_FIELDS = ("learning_rate", "lr_scheduler", "warmup_ratio", "num_epochs", "max_steps", "batch_size",
                "grad_accum", "max_length", "save_steps", "log_steps", "precision", "seed")
CALIBRATION_FIELDS = ("calibration_prompts", "calibration_languages", "calibration_max_new_tokens",
                      "calibration_batch_size", "calibration_copy_examples", *LORA_FIELDS, *TRAIN_FIELDS)
GENERATION_FIELDS = ("calibration_languages", "calibration_max_new_tokens", "calibration_batch_size")


@dataclass
class LepPropagateParams:
    """07_lep_propagate: propagate a donor's embeddings into an instruct model."""

    base: str = "smollm2-135m-instruct"  # S: the model the donor was adapted from
    instruct: str = ""  # T: S's instruct model (a 05 run directory offline, or a hub id)
    donor: str = ""  # D: a 04_vocab_adapt run (trained by 03_lapt in embeddings mode), or its 03 run
    mode: str = "conversion"  # conversion, overlap or swap
    layer_deltas: bool = False  # also add D's layer changes (D minus S) to T's layers
    language: str = "ru"  # the adapted language (scoring)
    corpus_tag: str = "default"  # the corpus whose test split is scored
    english_corpus_tag: str = ""  # the English corpus ("" = corpus_tag)
    test_max_chars: int = 20000  # target-language test characters scored (0 = no scoring)
    english_max_chars: int = 10000  # English test characters scored (0 = none)
    eval_max_length: int = 1024  # tokens per scoring window
    eval_stride: int = 512  # new tokens per scoring window
    eval_batch_size: int = 8  # windows per scoring forward pass
    device: str = "auto"  # auto, cpu or cuda (scoring, T's answers, calibration)
    calibrate: bool = False  # self-calibration: LoRA on T's own answers (the fields below)
    calibration_prompts: int = 200  # prompts per calibration language (instruction set's train split)
    calibration_languages: list[str] = field(default_factory=lambda: ["target", "en"])  # target and/or en
    calibration_max_new_tokens: int = 256  # tokens T may answer per prompt (greedy)
    calibration_batch_size: int = 16  # prompts per generation batch of T
    calibration_copy_examples: int = 0  # train-split paragraphs to repeat verbatim, added to the pairs
    lora_r: int | None = None  # calibration LoRA rank; None = 32
    lora_alpha: int | None = None  # None = 16
    lora_dropout: float | None = None  # None = 0.05
    lora_target_modules: list[str] | None = None  # None = all-linear
    learning_rate: float = 2e-4  # calibration: peak rate after warmup
    lr_scheduler: str = "cosine"  # cosine, linear or constant_with_warmup
    warmup_ratio: float = 0.05  # fraction of the steps spent in warmup
    num_epochs: float = 1.0  # passes over the pairs when max_steps is 0
    max_steps: int = 0  # optimizer steps; 0 = num_epochs passes
    batch_size: int = 8  # pairs per micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    max_length: int = 512  # tokens per pair (prompt and answer, chat markup included)
    save_steps: int = 50  # checkpoint every N steps (0 = none, so no resume)
    log_steps: int = 10  # training loss logged every N steps
    precision: str = "auto"  # calibration: auto (bf16 where supported), bf16 or fp32
    seed: int = 1234  # calibration: prompt draw, data order, adapter initialisation
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    def validate(self) -> None:
        from lib.lep import MODES
        from lib.lep.calibration import CalibrationError, languages

        check_language(self.language, ("pl", "tr", "ru"))
        check_choice("mode", self.mode, tuple(MODES))
        check_choice("device", self.device, DEVICES)
        for key in ("test_max_chars", "english_max_chars", "calibration_prompts", "calibration_copy_examples"):
            check_positive(key, getattr(self, key), allow_zero=True)
        for key in ("eval_max_length", "eval_stride", "eval_batch_size", "calibration_max_new_tokens",
                    "calibration_batch_size", "max_length"):
            check_positive(key, getattr(self, key))
        check_train_fields(self)
        check_lora_fields(self)
        try:
            codes = languages(self.calibration_languages, self.language)
        except CalibrationError as exc:
            raise ParamsError(f"calibration_languages: {exc}") from None
        if self.calibrate and not (self.calibration_prompts or self.calibration_copy_examples):
            raise ParamsError("calibrate=True needs calibration_prompts or calibration_copy_examples above 0")
        if self.calibrate and self.calibration_prompts and not codes:
            raise ParamsError("calibration_languages must name target and/or en (or set calibration_prompts 0 "
                              "to calibrate on copy examples only)")

    def inapplicable(self) -> set[str]:
        """Every calibration field without calibration; T's generation settings when T is asked nothing."""
        if not self.calibrate:
            return set(CALIBRATION_FIELDS)
        return set(GENERATION_FIELDS) if not self.calibration_prompts else set()

    def why_inapplicable(self) -> str:
        if not self.calibrate:
            return "calibrate=False, which runs no self-calibration (set calibrate=true to use them)"
        return "calibration_prompts=0, which asks T nothing (copy examples only)"


Params = LepPropagateParams


def check(params: LepPropagateParams) -> None:
    """Before a run starts (the command line and sweeps call it): the three models are named,
    and for calibration T (when it is already a local checkpoint) has a chat template.
    (Empty defaults keep the notebook's parameters cell valid as it is committed.)"""
    missing = [key for key in ("base", "instruct", "donor") if not getattr(params, key)]
    if missing:
        raise ParamsError(f"{', '.join(missing)} must name a model: base S, its instruct model T, and the donor D "
                          "(a 04_vocab_adapt run, usually trained by 03_lapt in embeddings mode)")
    if params.calibrate and Path(params.instruct).expanduser().is_dir():
        from lib.lep.calibration import CalibrationError, check_chat_template
        from lib.models import ModelSpecError, load_tokenizer

        try:
            tokenizer = load_tokenizer(params.instruct)
        except ModelSpecError:
            return  # not a checkpoint (yet): the model checks say so, and prepare() checks again
        try:
            check_chat_template(tokenizer, params.instruct)
        except CalibrationError as exc:
            raise ParamsError(str(exc)) from None


# ---------------------------------------------------------------- steps


@dataclass
class LepSetup:
    params: LepPropagateParams
    run_dir: Path
    models: dict[str, Any]  # base, instruct, donor (base and donor released once propagate() used them)
    tokenizers: dict[str, Any]
    donor_provenance: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    device: str = "cpu"  # T's answers, calibration and scoring
    precision: str = "fp32"  # calibration training
    propagated: bool = False  # T's weights in ``models["instruct"]`` were replaced by propagate()

    def summary(self) -> dict[str, Any]:
        p = self.params
        out = {"base": p.base, "instruct": p.instruct, "donor": p.donor, "mode": p.mode,
               "layer_deltas": p.layer_deltas,
               "vocab": {name: len(tok) for name, tok in self.tokenizers.items()},
               "donor_strategy": self.donor_provenance.get("strategy"), "calibrate": p.calibrate,
               "notes": self.notes}
        if p.calibrate:
            out["calibration"] = {"prompts": p.calibration_prompts, "languages": p.calibration_languages,
                                  "copy_examples": p.calibration_copy_examples, "lora": lora_values(p),
                                  "device": self.device, "precision": self.precision}
        return out


def prepare(params: LepPropagateParams, run_dir: str | Path, log=print) -> LepSetup:
    """Load S, T and D (float32) with their tokenizers and check that they can be combined; for
    calibration, T's chat template, the lengths and the precision are checked before any loading."""
    from lib.lep import check_compatible, check_tokenizers
    from lib.models import load_model_and_tokenizer, resolve_device

    check(params)
    device = resolve_device(params.device)
    precision = _check_calibration(params, device) if params.calibrate else "fp32"
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    models, tokenizers = {}, {}
    for name in ("base", "instruct", "donor"):
        models[name], tokenizers[name] = load_model_and_tokenizer(getattr(params, name), dtype="float32")
    from lib.vocab.checkpoint import vocabulary_provenance

    provenance = vocabulary_provenance(params.donor)
    check_compatible(models["base"], models["instruct"], models["donor"])
    kind = check_tokenizers(tokenizers["base"], tokenizers["donor"], tokenizers["instruct"], provenance or None)
    if params.calibrate:
        from lib.training.modes import check_target_modules

        check_target_modules(models["instruct"], lora_values(params)["target_modules"])  # the result's layers are T's
    setup = LepSetup(params, run_dir, models, tokenizers, provenance, [f"donor tokenizer: {kind}"], device,
                     precision)
    log(f"S {len(tokenizers['base'])}, T {len(tokenizers['instruct'])}, D {len(tokenizers['donor'])} tokens; "
        f"mode {params.mode}" + (f"; calibration on {device}/{precision}" if params.calibrate else ""))
    return setup


def _check_calibration(params: LepPropagateParams, device: str) -> str:
    """T has a chat template, the pairs fit its context, the precision is possible: the
    training precision."""
    from lib.lep.calibration import check_chat_template
    from lib.models import check_context, load_tokenizer
    from lib.training.modes import resolve_precision

    check_chat_template(load_tokenizer(params.instruct), params.instruct)
    check_context(params.instruct, max_length=params.max_length)
    return resolve_precision(params.precision, device)


def propagated_dir(setup: LepSetup) -> Path:
    """Where the propagated model goes: the run's model, or beside it when calibration follows."""
    return setup.run_dir / (PROPAGATED_DIR if setup.params.calibrate else MODEL_DIR)


def propagate(setup: LepSetup, log=print):
    """T with D's embeddings (T is changed in place), saved with its tokenizer in ``<run>/model``
    (``<run>/propagated`` with calibrate=True). S and D are released from the setup afterwards:
    no later step needs them, and on 7B models each is another full copy of the weights."""
    from lib.lep import LepError
    from lib.lep import propagate as lep_propagate
    from lib.vocab import save_checkpoint

    p = setup.params
    m, t = setup.models, setup.tokenizers
    if "base" not in m or "donor" not in m:
        raise LepError("propagate(setup) already ran on this setup (S and D were released after it): "
                       "prepare(params, run_dir) again to propagate anew")
    setup.propagated = True  # from here on (even if it fails half-way) T's weights are not T's
    model, tokenizer, report = lep_propagate(m["base"], m["instruct"], m["donor"], t["base"], t["donor"],
                                             t["instruct"], mode=p.mode, layer_deltas=p.layer_deltas,
                                             provenance=setup.donor_provenance or None)
    del m["base"], m["donor"]  # the fits and layer deltas are done: S and D are not needed again
    free_memory()
    record = report.as_dict()
    out = propagated_dir(setup)
    save_checkpoint(model, tokenizer, out,
                    {"stage": STAGE, "base": p.base, "instruct": p.instruct, "donor": p.donor, "mode": p.mode,
                     "layer_deltas": p.layer_deltas, "report": record})
    log(f"propagated ({p.mode}): {len(tokenizer)} tokens; checkpoint in {out}")
    return model, tokenizer, record


# ---------------------------------------------------------------- self-calibration


def calibration_settings(params: LepPropagateParams) -> dict[str, Any]:
    """What the calibration pairs depend on (saved pairs are reused while these are the same)."""
    from lib.lep.calibration import languages

    return {"instruct": params.instruct, "language": params.language, "corpus_tag": params.corpus_tag,
            "prompts": params.calibration_prompts,
            "languages": languages(params.calibration_languages, params.language) if params.calibration_prompts
            else [], "max_new_tokens": params.calibration_max_new_tokens,
            "copy_examples": params.calibration_copy_examples, "seed": params.seed}


def calibration_data(setup: LepSetup, log=print) -> list[dict[str, Any]]:
    """The calibration pairs: T's greedy answers to the prompts (T with its original tokenizer and
    chat template: call this before ``propagate``, or T is loaded again), and the copy examples;
    recorded in ``<run>/calibration/pairs.jsonl``. Empty without calibration."""
    from lib.lep import calibration as C

    p = setup.params
    if not p.calibrate:
        log("no self-calibration (calibrate=False)")
        return []
    work = setup.run_dir / CALIBRATION_DIR
    settings = calibration_settings(p)
    saved = C.load_pairs(work, settings)
    if saved is not None:
        log(f"{len(saved)} calibration pairs from {work / C.PAIRS_FILE} (made with the same settings)")
        return saved
    prompts: list[dict[str, Any]] = []
    if p.calibration_prompts:
        rows = C.instruction_train_rows(p.language, p.corpus_tag, log)
        for code in settings["languages"]:
            made = (C.english_prompts if code == "en" else C.target_prompts)(rows, p.calibration_prompts, p.seed,
                                                                            p.language)
            if len(made) < p.calibration_prompts:
                log(f"only {len(made)} {code} prompts in the train split (calibration_prompts {p.calibration_prompts})")
            prompts += made
    answered, empty = [], 0
    if prompts:
        answered, empty = _instruct_answers(setup, prompts, log)
    copies = C.copy_examples(C.corpus_train_documents(p.language, p.corpus_tag), p.calibration_copy_examples, p.seed,
                             p.language) if p.calibration_copy_examples else []
    pairs = answered + copies
    counts = C.pair_counts(pairs) | {"prompts": len(prompts), "empty_answers": empty}
    C.save_pairs(work, pairs, settings, counts)
    log(f"{len(pairs)} calibration pairs ({json.dumps(counts)}) in {work / C.PAIRS_FILE}")
    return pairs


def _instruct_answers(setup: LepSetup, prompts, log=print):
    """T's answers, with T's own tokenizer: the loaded T while propagation has not changed it."""
    import time

    from lib.lep.calibration import answer_prompts
    from lib.models import load_model

    p = setup.params
    tokenizer = setup.tokenizers["instruct"]  # T's original tokenizer and chat template
    if setup.propagated:
        model = load_model(p.instruct, dtype="float32", device=setup.device)
    else:
        model = setup.models["instruct"].to(setup.device)
    start = time.perf_counter()
    try:
        pairs, empty = answer_prompts(model, tokenizer, prompts, max_new_tokens=p.calibration_max_new_tokens,
                                      batch_size=p.calibration_batch_size)
    finally:
        if not setup.propagated:
            setup.models["instruct"].to("cpu")  # propagation works on the CPU
        del model  # a T loaded again for the answers is not needed after them
        free_memory()
    log(f"T answered {len(prompts)} prompts in {time.perf_counter() - start:.0f} s ({empty} empty answers dropped)")
    return pairs, empty


def scores_table(rows: list[dict[str, Any]]):
    """Each scored model's values side by side (an empty table when nothing was scored:
    test_max_chars and english_max_chars both 0)."""
    import pandas as pd

    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).pivot_table(index=["language", "metric"], columns="model", values="value").round(3)


def pairs_table(pairs: list[dict[str, Any]], per_kind: int = 2):
    """A few pairs of each kind and language: the prompt and T's answer (or the copy target)."""
    import pandas as pd

    shown: dict[tuple[str, str], int] = {}
    rows = []
    for pair in pairs:
        key = (pair["kind"], pair["language"])
        if shown.get(key, 0) < per_kind:
            shown[key] = shown.get(key, 0) + 1
            rows.append({"kind": key[0], "language": key[1], "prompt": pair["prompt"][-1]["content"],
                         "answer": pair["completion"][-1]["content"]})
    return pd.DataFrame(rows, columns=["kind", "language", "prompt", "answer"])


def calibration_trainer(setup: LepSetup, pairs: list[dict[str, Any]], log=print):
    """The SFTTrainer for a LoRA adapter on the propagated checkpoint (not trained yet); None
    without calibration. Its tokenizer is the propagated model's, with T's chat template."""
    from lib.lep import calibration as C
    from lib.models import load_tokenizer
    from lib.training.arguments import TrainSettings

    p = setup.params
    if not p.calibrate:
        return None
    model_dir = setup.run_dir / PROPAGATED_DIR
    if not (model_dir / "config.json").is_file():
        raise C.CalibrationError(f"no propagated checkpoint in {model_dir}: run propagate(setup) first")
    trainer = C.calibration_trainer(model_dir, load_tokenizer(str(model_dir)), pairs, settings=TrainSettings.of(p),
                                    lora=lora_values(p), max_length=p.max_length,
                                    work_dir=setup.run_dir / CALIBRATION_DIR, device=setup.device,
                                    precision=setup.precision)
    dropped = len(pairs) - len(trainer.train_dataset)
    if dropped:  # TRL drops a pair whose prompt alone fills max_length (nothing left to learn)
        log(f"{dropped} of {len(pairs)} pairs have no answer token within max_length {p.max_length}: not trained on")
    return trainer


def calibrate(setup: LepSetup, trainer, log=print) -> dict[str, Any]:
    """Train (resuming from the last checkpoint of a killed run), merge the adapter into the
    propagated model: the calibrated checkpoint in ``<run>/model``. A record for metrics.json."""
    from lib.lep.calibration import train_and_merge

    p = setup.params
    if trainer is None:
        return {"calibrated": False}
    work = setup.run_dir / CALIBRATION_DIR
    outcome, out = train_and_merge(
        trainer, model_dir=setup.run_dir / PROPAGATED_DIR, tokenizer=trainer.processing_class, work_dir=work,
        out_dir=setup.run_dir / MODEL_DIR, log=log,
        provenance={"stage": STAGE, "calibrated": True, "from": str(setup.run_dir / PROPAGATED_DIR),
                    "instruct": p.instruct, "donor": p.donor, "mode": p.mode, "lora": lora_values(p),
                    "pairs": str(work / "pairs.jsonl")})
    log(f"calibrated checkpoint: {out}")
    return {"calibrated": True, "model_dir": str(out), "examples_trained": len(trainer.train_dataset),
            "resumed_from": outcome.resumed_from, "train": outcome.train_metrics}


def score(setup: LepSetup, model, tokenizer, calibration: dict[str, Any] | None = None,
          log=print) -> list[dict[str, Any]]:
    """Bits per character and characters per token on the target and English test text: the
    instruct model T as it was, the propagated model, and the calibrated one when there is one
    (each loaded in turn)."""
    from lib.corpus.select import select_texts, split_documents
    from lib.lm_metrics import score_texts
    from lib.models import load_model_and_tokenizer

    p = setup.params
    device = setup.device
    sets = []
    for language, tag, max_chars in ((p.language, p.corpus_tag, p.test_max_chars),
                                     ("en", p.english_corpus_tag or p.corpus_tag, p.english_max_chars)):
        if max_chars:
            texts, ids = split_documents(language, tag, "test")
            sets.append((language, select_texts(texts, ids, max_chars)))
    settings = {"max_length": p.eval_max_length, "stride": p.eval_stride, "batch_size": p.eval_batch_size}
    candidates = [("instruct", lambda: load_model_and_tokenizer(p.instruct, dtype="float32", device=device)),
                  (f"lep-{p.mode}", lambda: (model.to(device), tokenizer))]
    if calibration and calibration.get("calibrated"):
        candidates.append((f"lep-{p.mode}-calibrated", lambda: load_model_and_tokenizer(
            calibration["model_dir"], dtype="float32", device=device)))
    rows = []
    for name, load in candidates:
        candidate, tok = load()  # one loaded model at a time besides the propagated one
        for language, texts in sets:
            s = score_texts(candidate, tok, texts, **settings)
            common = {"model": name, "mode": p.mode, "language": language, "split": "test", "n_chars": s.n_chars,
                      "n_tokens": s.n_tokens}
            rows += [common | {"metric": metric, "value": float(getattr(s, metric))}
                     for metric in ("bits_per_char", "chars_per_token")]
            log(f"{name} {language}: {s.bits_per_char:.3f} bpc, {s.chars_per_token:.2f} chars/token")
        candidate = tok = None  # released before the next one loads
        free_memory()
    return rows


# ---------------------------------------------------------------- the chain's figure

CHAIN_GROUPS = ("S", "T", "D", "LEP")  # label prefixes, in the order the bars stand


def chain_order(names) -> list[str]:
    """The chain's models in a fixed order: S, T, the donors D..., the propagated LEP... (labels
    start with that word), alphabetical within a group; other names last."""
    def key(name: str):
        first = str(name).split(" ", 1)[0].split(":", 1)[0]
        return (CHAIN_GROUPS.index(first) if first in CHAIN_GROUPS else len(CHAIN_GROUPS), str(name))

    return sorted(dict.fromkeys(names), key=key)


def _series_order(values) -> list[str]:
    """Shot counts by number ("0-shot", "3-shot"), languages with English last."""
    def key(value: str):
        number = value.split("-", 1)[0]
        return (value == "en", int(number) if number.isdigit() else -1, value)

    return sorted(set(map(str, values)), key=key)


def chain_panels(table) -> list[tuple[str, str, Any]]:
    """The figure's panels from the chain's table alone: (title, y label, frame of model, series,
    value). Benchmark rows (08_evaluate: every offline task's headline metric, averaged per model
    and shot count; copy_rate per language; chars_per_second and tokens_per_second of the speed
    measure) and bits per character / characters per token (02_baseline_eval rows, source all)."""
    import pandas as pd

    from lib.tasks.plots import primary_rows

    columns = ["model", "series", "value"]
    kind = table["kind"] if "kind" in table else pd.Series(index=table.index, dtype=object)
    panels = []
    tasks = table[kind.notna() & (kind != "copy")]
    bench = pd.DataFrame(columns=columns)
    if not tasks.empty:
        rows = primary_rows(tasks)
        bench = (rows.groupby(["model", "n_shot"], as_index=False)["value"].mean()
                 .assign(series=lambda f: f["n_shot"].astype(int).astype(str) + "-shot"))[columns]
    panels.append(("benchmarks: mean headline score of the offline tasks (accuracy; macro-F1 for topics)",
                   "score (0-1)", bench))
    copy = table[(kind == "copy") & (table["metric"] == "copy_rate")]
    copy = copy.assign(series=copy["language"]) if not copy.empty else pd.DataFrame(columns=columns)
    panels.append(("copy task: share of paragraphs repeated verbatim", "copy rate", copy[columns]))
    source_all = table["source"] == "all" if "source" in table else pd.Series(True, index=table.index)
    for metric, title, unit in (("bits_per_char", "bits per character (test; lower is better)", "bits/char"),
                                ("chars_per_token", "characters per token (test)", "chars/token")):
        part = table[(table["metric"] == metric) & source_all]
        part = part.assign(series=part["language"]) if not part.empty else pd.DataFrame(columns=columns)
        panels.append((title, unit, part[columns]))
    for column, title, unit in (("chars_per_second", "generation speed: characters per second", "chars/s"),
                                ("tokens_per_second", "generation speed: tokens per second", "tokens/s")):
        speed = pd.DataFrame(columns=columns)
        if column in table:
            speed = (table.dropna(subset=[column]).groupby("model", as_index=False)[column].first()
                     .rename(columns={column: "value"}).assign(series=column.replace("_", " ")))[columns]
        panels.append((title, unit, speed))
    return panels


def plot_lep_chain(table, title: str = "LEP chain"):
    """One bar per model (S, T, donors, propagated and calibrated models) in each panel of
    ``chain_panels``; series (shots, languages) side by side."""
    import matplotlib.pyplot as plt
    import numpy as np

    models = chain_order(table["model"].dropna().astype(str))
    if not models:
        raise ValueError("the table has no model rows to plot")
    panels = chain_panels(table)
    colors = plt.get_cmap("tab10")
    cols = 2
    fig, axes = plt.subplots((len(panels) + cols - 1) // cols, cols, figsize=(7 * cols, 3.6 * len(panels) / cols + 1),
                             squeeze=False)
    x = np.arange(len(models))
    for ax, (name, unit, frame) in zip(axes.flat, panels):
        series = _series_order(frame["series"])
        width = 0.8 / max(len(series), 1)
        for i, label in enumerate(series):
            values = frame[frame["series"].astype(str) == label].groupby("model")["value"].first()
            heights = [float(values.get(model, np.nan)) for model in models]
            ax.bar(x - 0.4 + width * (i + 0.5), heights, width, label=label, color=colors(i))
        if not series:
            ax.text(0.5, 0.5, "no rows in the table", ha="center", va="center", transform=ax.transAxes)
        elif len(series) > 1:
            ax.legend(fontsize=8, loc="best")
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(unit)
        ax.set_xticks(x, models, rotation=40, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# The bar for the conversion model against T (README "The LEP chain on Russian")
KEEPS_ACCURACY = 0.95  # share of T's mean benchmark score kept
CHARS_PER_TOKEN_GAIN = 2.0  # times T's characters per token (target language)
SPEED_GAIN = 1.5  # times T's characters generated per second
COPY_AFTER_CALIBRATION = 0.95  # copy-task rate in the target language after calibration


def chain_summary(table, language: str = "ru"):
    """One row per model of the chain's table: bits per character and characters per token (02,
    source all) in ``language`` and English, the mean headline benchmark score per shot count and
    over both, the copy rate per language, characters generated per second; and each model
    against T (the row labelled "T", or the "T <what>" its label ends with, see ``reference_T``;
    a column ``T`` names it when the table has several): ``score_vs_T``, ``chars_per_token_vs_T``,
    ``speed_vs_T``."""
    import pandas as pd

    from lib.tasks.plots import primary_rows

    models = chain_order(table["model"].dropna().astype(str))
    out = pd.DataFrame(index=pd.Index(models, name="model"))
    source_all = table["source"] == "all" if "source" in table else pd.Series(True, index=table.index)
    for metric, short in (("bits_per_char", "bpc"), ("chars_per_token", "chars_per_token")):
        for lang in (language, "en"):
            part = table[(table["metric"] == metric) & source_all & (table["language"] == lang)]
            out[f"{short}_{lang}"] = part.groupby("model")["value"].first()
    kind = table["kind"] if "kind" in table else pd.Series(index=table.index, dtype=object)
    tasks = table[kind.notna() & (kind != "copy")]
    if not tasks.empty:
        rows = primary_rows(tasks)
        for shots, part in rows.groupby("n_shot"):
            out[f"score_{int(shots)}_shot"] = part.groupby("model")["value"].mean()
        out["score_mean"] = rows.groupby("model")["value"].mean()
    copy = table[(kind == "copy") & (table["metric"] == "copy_rate")]
    for lang, part in copy.groupby("language"):
        out[f"copy_{lang}"] = part.groupby("model")["value"].first()
    if "chars_per_second" in table:
        out["chars_per_second"] = table.dropna(subset=["chars_per_second"]).groupby("model")["chars_per_second"].first()
    references = [reference_T(model, models) for model in models]
    if any(references):
        if len({r for r in references if r}) > 1:
            out["T"] = references
        for column, ratio in (("score_mean", "score_vs_T"), (f"chars_per_token_{language}", "chars_per_token_vs_T"),
                              ("chars_per_second", "speed_vs_T")):
            if column in out:
                out[ratio] = [out.at[model, column] / out.at[ref, column] if ref else float("nan")
                              for model, ref in zip(models, references)]
    return out.reset_index()


def reference_T(model: str, models: list[str]) -> str | None:
    """The T a model of the table is measured against: the longest T label ("T", "T <what>") that
    its own label ends with (so "LEP conversion into T lr 2e-4" goes with "T lr 2e-4"), else
    the plain "T"; None when the table has neither."""
    ts = [name for name in models if name == "T" or name.startswith("T ")]
    own = [t for t in ts if model == t or model.endswith(" " + t)]
    if own:
        return max(own, key=len)
    return "T" if "T" in ts else None


# Each LEP sweep's figure: one bar per model of its table (results/tables/<name>.csv, written by
# params/sweeps/<name>.yaml), under this title. The benchmark and copy-task rows come from 08_evaluate
# runs of this stage's models.
LEP_FIGURE_TITLES = {
    "lep_chain_ru": "LEP chain on ru: S, T = S + 05, donors D, propagated (and calibrated) T",
    "lep_cpu_donor_ru": "LEP on ru with the cpu profile's donor (1M tokens of embeddings-only LAPT)",
    "lep_ru": "LEP on ru (reproduce lep's default): T, donor D, propagated and calibrated T",
    "lep_new_rows_ru": "LEP on ru with a donor that trained only the new tokens' rows",
    "lep_new_rows_1m_ru": "LEP on ru with a donor that trained only the new tokens' rows on 1M tokens",
    "lep_parallel_donor_ru": "LEP on ru with a new-rows donor whose 1M tokens hold en<->ru pairs",
    "lep_small_extension_ru": "LEP on ru: the parallel donor on 3,000- and 2,000-token extensions",
    "lep_lora_instruct_ru": "LEP on ru into a T made by LoRA with trained embeddings (two learning rates)",
}


def lep_figure(name: str, results_dir: Path) -> Path:
    """The figure of the LEP sweep ``name`` (a key of LEP_FIGURE_TITLES), drawn from its table alone."""
    from lib.plotting import read_table, save

    table = read_table(results_dir, f"{name}.csv")
    return save(plot_lep_chain(table, title=LEP_FIGURE_TITLES[name]), results_dir, name)


FIGURES = {name: functools.partial(lep_figure, name) for name in LEP_FIGURE_TITLES}
