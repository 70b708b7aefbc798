"""The pipeline's stages: one module per notebook, found by the notebook's name.

    01_prepare_data        lib/stages/prepare_data.py
    02_baseline_eval       lib/stages/baseline_eval.py
    03_lapt                lib/stages/lapt.py
    04_vocab_adapt         lib/stages/vocab_adapt.py
    05_instruction_tuning  lib/stages/instruction_tuning.py
    06_task_tuning         lib/stages/task_tuning.py
    07_lep_propagate       lib/stages/lep_propagate.py
    08_evaluate            lib/stages/evaluate.py
    90_figures             lib/stages/figures.py

Each module holds its stage's parameters dataclass (``Params``: the fields of
the notebook's parameters cell), its steps and its plots (``FIGURES``). Stages
build on the building blocks in ``lib/`` (models, corpus, training, tasks, ...),
which never import a stage; stages do not import each other, except that
``90_figures`` gathers every stage's plots. This module is the registry that
the command line and the sweeps look stages up in.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from lib import params as P
from lib.paths import PARAMS_DIR
from lib.stages import (
    baseline_eval,
    evaluate,
    figures,
    instruction_tuning,
    lapt,
    lep_propagate,
    prepare_data,
    task_tuning,
    vocab_adapt,
)

STAGES: dict[str, ModuleType] = {m.STAGE: m for m in (
    prepare_data, baseline_eval, lapt, vocab_adapt, instruction_tuning, task_tuning, lep_propagate, evaluate,
    figures)}
# Reserved numbers: the notebooks and modules of stages still to come.
PLANNED: dict[str, str] = {}  # e.g. {"09_new_stage": "lib/stages/new_stage.py"} while it is being built


def stage_of(notebook: str | Path) -> str:
    """'notebooks/01_prepare_data.ipynb' or '01_prepare_data' -> '01_prepare_data', checked."""
    stem = Path(notebook).stem
    if stem in PLANNED:
        raise P.ParamsError(f"stage {stem} is planned but not built yet ({PLANNED[stem]})")
    if stem not in STAGES:
        raise P.ParamsError(f"unknown notebook {notebook!r}; known: {', '.join(STAGES)}")
    return stem


def params_class(stage: str) -> type:
    return STAGES[stage_of(stage)].Params


def known_profiles() -> list[str]:
    return sorted(p.stem for p in (PARAMS_DIR / "profiles").glob("*.yaml"))


def load_profile(name: str) -> dict[str, dict[str, Any]]:
    path = PARAMS_DIR / "profiles" / f"{name}.yaml"
    if not path.is_file():
        raise P.ParamsError(f"unknown profile {name!r}; known: {', '.join(known_profiles())}")
    data = P.read_yaml(path)
    for section in data:
        if section not in STAGES:
            raise P.ParamsError(f"profile {name!r} has a section for unknown notebook {section!r}")
    return data


def resolve(stage: str, *, profile: str | None = None, files: list[str | Path] = (),
            overrides: dict[str, Any] | None = None):
    """Defaults < profile section < parameter files (in order) < overrides, validated."""
    stage = stage_of(stage)
    section = (load_profile(profile).get(stage) or {}) if profile else {}
    return P.resolve(params_class(stage), stage, profile_values=section, files=files, overrides=overrides)


def notebook_params(stage: str, namespace: dict[str, Any]):
    """A notebook's parameters cell (its ``globals()``), validated like any other parameters."""
    return P.from_namespace(params_class(stage), stage, namespace)
