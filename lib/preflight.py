"""Checks a run's inputs can pass before anything starts: models that exist, corpora that are
built, hardware the mode needs. ``python -m lib run`` and every sweep call it first, so a
misspelled model or an unbuilt corpus fails in a second with one line, not after the earlier
runs of a sweep or inside a notebook's traceback.

A stage may add its own checks as ``check(params)`` in its module (01_prepare_data checks that
an existing corpus of the same tag was built with the same parameters); the drivers (the
command line and sweeps) call it after these.

The checks read the parameters by their common names (``model``, ``models``, ``tokenizers``,
``base``, ``instruct``, ``donor``,
``language`` + ``corpus_tag``, ``english_corpus_tag``, ``mode``), so they hold for every stage.
"""

from __future__ import annotations

from collections.abc import Collection

from lib.params import ParamsError

CORPUS_BUILDER = "01_prepare_data"


def check(stage: str, params, *, planned_runs: Collection[str] = (),
          planned_corpora: Collection[tuple[str, str]] = ()) -> None:
    """Raise (ParamsError, ModelSpecError) for the first input that cannot work. ``planned_*``:
    run directories and (language, corpus_tag) pairs that earlier steps of a sweep will make."""
    tokenizer_only_ok = getattr(params, "accepts_tokenizer_only", False)
    for spec in model_specs(params):
        check_model(spec, planned_runs, tokenizer_only_ok=tokenizer_only_ok)
    if stage != CORPUS_BUILDER:
        for language, tag in corpora(stage, params):
            check_corpus(language, tag, planned_corpora)
    wants_gpu = getattr(params, "mode", None) == "qlora" or getattr(params, "device", "auto") == "cuda"
    if wants_gpu:
        import torch

        if not torch.cuda.is_available():
            what = "mode qlora (bitsandbytes 4-bit NF4)" if getattr(params, "mode", None) == "qlora" else \
                "device cuda"
            raise ParamsError(f"{what} needs a CUDA GPU and this machine has none; "
                              "use mode lora / device auto or cpu")


def model_specs(params) -> list[str]:
    specs = [getattr(params, name, None) for name in ("model", "base", "instruct", "donor")]
    specs += list(getattr(params, "models", None) or [])
    specs += list(getattr(params, "tokenizers", None) or [])
    return [s for s in specs if s]


def corpora(stage: str, params) -> list[tuple[str, str]]:
    """The (language, corpus_tag) pairs a run reads."""
    if not hasattr(params, "corpus_tag") or not hasattr(params, "language"):
        return []
    if stage == "08_evaluate":
        return _evaluation_corpora(params)
    pairs = [(params.language, params.corpus_tag)]
    if getattr(params, "english_max_chars", 0) and params.language != "en":
        pairs.append(("en", getattr(params, "english_corpus_tag", "") or params.corpus_tag))
    return pairs


def check_model(spec: str, planned_runs: Collection[str] = (), *, tokenizer_only_ok: bool = False) -> None:
    from lib.models import check_spec
    from lib.vocab.paper_tokenizers import PAPER_TOKENIZERS, require_model

    if spec in planned_runs:
        return  # an earlier step of the sweep makes it
    if spec in PAPER_TOKENIZERS:
        if not tokenizer_only_ok:
            require_model(spec)  # a tokenizer-only entry where a model is needed: say so
        return
    check_spec(spec)  # registry name, checkpoint or run directory, or a hub id the hub can serve


def check_corpus(language: str, tag: str, planned: Collection[tuple[str, str]] = ()) -> None:
    from lib.corpus import corpus_path

    if (language, tag) in planned or (corpus_path(language, tag) / "manifest.json").is_file():
        return
    raise ParamsError(f"the {language}/{tag} corpus is not built; build it first: "
                      f"python -m lib prepare --language {language} -p corpus_tag={tag}")


def _evaluation_corpora(params) -> list[tuple[str, str]]:
    """08_evaluate reads the corpus of each offline task's own language (``copy:en`` reads the
    English one), and that of ``language`` for the speed prompts."""
    from lib.tasks.evaluation import resolve_task_ids
    from lib.tasks.offline import OFFLINE

    languages = [params.language] if getattr(params, "speed_prompts", 0) else []
    for family, _, language in (t.partition(":") for t in resolve_task_ids(params.tasks, params.language)):
        if family in OFFLINE:
            languages.append(language)
    return [(language, params.corpus_tag) for language in dict.fromkeys(languages)]
