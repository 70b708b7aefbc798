"""07_lep_propagate: Learned Embedding Propagation into an instruct model (the LEP paper's method).

A base model S gets a new vocabulary and trained embeddings: the donor D (a
``04_vocab_adapt`` run, usually trained by ``03_lapt`` in ``embeddings`` mode). Those
embeddings go into S's instruct model T without any instruction tuning of the adapted model:
T's new matrix is D's times a d x d map P fitted between S's and T's old embeddings
(``lib.lep``). The steps, which the notebook calls one by one::

    setup = prepare(params, run_dir)     # S, T, D and their tokenizers; every check first
    model, tokenizer, report = propagate(setup)   # P fitted per matrix; <run>/model written
    rows = score(setup, model, tokenizer)         # bits per character, chars/token: T and the result

Modes (``mode``, registered in ``lib.lep.MODES``): ``conversion`` (P fitted on every row of
the old matrices mapped onto the new vocabulary by sub-token means, as the authors' pipeline
does by default), ``overlap`` (P fitted on the tokens both vocabularies share), ``swap``
(P = I: D's embeddings copied). ``layer_deltas`` also adds D's layer changes (D minus S, a
donor trained with LoRA and embeddings) to T's layers.

Self-calibration, the copy task and generation speed are the next steps of this stage
(not built yet).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.params import DEVICES, ParamsError, check_choice, check_language, check_positive

STAGE = "07_lep_propagate"


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
    device: str = "auto"  # auto, cpu or cuda (scoring)
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    def validate(self) -> None:
        from lib.lep import MODES

        check_language(self.language, ("pl", "tr", "ru"))
        check_choice("mode", self.mode, tuple(MODES))
        check_choice("device", self.device, DEVICES)
        for key in ("test_max_chars", "english_max_chars"):
            check_positive(key, getattr(self, key), allow_zero=True)
        for key in ("eval_max_length", "eval_stride", "eval_batch_size"):
            check_positive(key, getattr(self, key))


Params = LepPropagateParams


def check(params: LepPropagateParams) -> None:
    """Before a run starts (the command line and sweeps call it): the three models are named.
    (Empty defaults keep the notebook's parameters cell valid as it is committed.)"""
    missing = [key for key in ("base", "instruct", "donor") if not getattr(params, key)]
    if missing:
        raise ParamsError(f"{', '.join(missing)} must name a model: base S, its instruct model T, and the donor D "
                          "(a 04_vocab_adapt run, usually trained by 03_lapt in embeddings mode)")


# ---------------------------------------------------------------- steps


@dataclass
class LepSetup:
    params: LepPropagateParams
    run_dir: Path
    models: dict[str, Any]  # base, instruct, donor
    tokenizers: dict[str, Any]
    donor_provenance: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        p = self.params
        return {"base": p.base, "instruct": p.instruct, "donor": p.donor, "mode": p.mode,
                "layer_deltas": p.layer_deltas,
                "vocab": {name: len(tok) for name, tok in self.tokenizers.items()},
                "donor_strategy": self.donor_provenance.get("strategy"), "notes": self.notes}


def prepare(params: LepPropagateParams, run_dir: str | Path, log=print) -> LepSetup:
    """Load S, T and D (float32) with their tokenizers and check that they can be combined."""
    from lib.lep import check_compatible, check_tokenizers
    from lib.models import load_model_and_tokenizer

    check(params)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    models, tokenizers = {}, {}
    for name in ("base", "instruct", "donor"):
        models[name], tokenizers[name] = load_model_and_tokenizer(getattr(params, name), dtype="float32")
    provenance = donor_provenance(params.donor)
    check_compatible(models["base"], models["instruct"], models["donor"])
    kind = check_tokenizers(tokenizers["base"], tokenizers["donor"], tokenizers["instruct"], provenance or None)
    setup = LepSetup(params, run_dir, models, tokenizers, provenance, [f"donor tokenizer: {kind}"])
    log(f"S {len(tokenizers['base'])}, T {len(tokenizers['instruct'])}, D {len(tokenizers['donor'])} tokens; "
        f"mode {params.mode}")
    return setup


def donor_provenance(spec: str) -> dict[str, Any]:
    """The provenance that 04 wrote for the donor's vocabulary: in the donor's own checkpoint, or
    in the run it was trained from (03 in embeddings mode names the 04 run as its model)."""
    import yaml

    for _ in range(8):  # chains are short
        path = Path(spec)
        record = path / "model" / "provenance.json"
        if record.is_file():
            data = json.loads(record.read_text())
            if data.get("stage") == "04_vocab_adapt":
                return data
        params_file = path / "params.yaml"
        if not params_file.is_file():
            return {}
        spec = (yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}).get("model", "")
        if not spec:
            return {}
    return {}


def propagate(setup: LepSetup, log=print):
    """T with D's embeddings (T is changed in place), saved with its tokenizer in ``<run>/model``."""
    from lib.lep import propagate as lep_propagate
    from lib.vocab import save_checkpoint

    p = setup.params
    m, t = setup.models, setup.tokenizers
    model, tokenizer, report = lep_propagate(m["base"], m["instruct"], m["donor"], t["base"], t["donor"],
                                             t["instruct"], mode=p.mode, layer_deltas=p.layer_deltas,
                                             provenance=setup.donor_provenance or None)
    record = report.as_dict()
    save_checkpoint(model, tokenizer, setup.run_dir / "model",
                    {"stage": STAGE, "base": p.base, "instruct": p.instruct, "donor": p.donor, "mode": p.mode,
                     "layer_deltas": p.layer_deltas, "report": record})
    log(f"propagated ({p.mode}): {len(tokenizer)} tokens; checkpoint in {setup.run_dir / 'model'}")
    return model, tokenizer, record


def score(setup: LepSetup, model, tokenizer, log=print) -> list[dict[str, Any]]:
    """Bits per character and characters per token on the target and English test text: the
    instruct model T as it was, and the propagated model."""
    from lib.corpus.select import select_texts, split_documents
    from lib.lm_metrics import score_texts
    from lib.models import load_model_and_tokenizer, resolve_device

    p = setup.params
    device = resolve_device(p.device)
    sets = []
    for language, tag, max_chars in ((p.language, p.corpus_tag, p.test_max_chars),
                                     ("en", p.english_corpus_tag or p.corpus_tag, p.english_max_chars)):
        if max_chars:
            texts, ids = split_documents(language, tag, "test")
            sets.append((language, select_texts(texts, ids, max_chars)))
    settings = {"max_length": p.eval_max_length, "stride": p.eval_stride, "batch_size": p.eval_batch_size}
    instruct, instruct_tok = load_model_and_tokenizer(p.instruct, dtype="float32", device=device)
    rows = []
    for name, candidate, tok in (("instruct", instruct, instruct_tok), (f"lep-{p.mode}", model.to(device), tokenizer)):
        for language, texts in sets:
            s = score_texts(candidate, tok, texts, **settings)
            common = {"model": name, "mode": p.mode, "language": language, "split": "test", "n_chars": s.n_chars,
                      "n_tokens": s.n_tokens}
            rows += [common | {"metric": metric, "value": float(getattr(s, metric))}
                     for metric in ("bits_per_char", "chars_per_token")]
            log(f"{name} {language}: {s.bits_per_char:.3f} bpc, {s.chars_per_token:.2f} chars/token")
    return rows


FIGURES: dict = {}  # the benchmark and copy-task figures come with the evaluation of this stage
