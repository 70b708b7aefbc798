"""90_figures: every figure of every stage, drawn from results tables alone (never a model).

Each stage module keeps its own plots and a ``FIGURES`` mapping (figure name ->
function of the results directory); this stage gathers them, so
``python -m lib figures`` and the notebook redraw all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lib.params import ParamsError
from lib.paths import RESULTS_DIR
from lib.plotting import FigureError, default_style
from lib.stages import baseline_eval, evaluate, lapt, lep_propagate, task_tuning, vocab_adapt

STAGE = "90_figures"
FIGURES: dict[str, Callable[[Path], Path]] = {
    **baseline_eval.FIGURES, **lapt.FIGURES, **vocab_adapt.FIGURES, **task_tuning.FIGURES, **evaluate.FIGURES,
    **lep_propagate.FIGURES}


@dataclass
class FiguresParams:
    """90_figures: every table and figure, from results/ only."""

    figures: list[str] = field(default_factory=lambda: ["all"])  # figure names (python -m lib figures --list), or all
    results_dir: str = ""  # empty = the repository's results/
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    def validate(self) -> None:
        if not self.figures:
            raise ParamsError("figures must name at least one figure (or 'all')")
        unknown = [f for f in self.figures if f != "all" and f not in FIGURES]
        if unknown:
            raise ParamsError(f"figures: unknown {', '.join(unknown)}; known: {', '.join(sorted(FIGURES))}")


Params = FiguresParams


def make(name: str, results_dir: Path | None = None) -> Path:
    """Draw one figure from its table, from matplotlib's defaults (the same bytes in any order)."""
    if name not in FIGURES:
        raise FigureError(f"unknown figure {name!r}; known: {', '.join(sorted(FIGURES))}")
    with default_style():
        return FIGURES[name](Path(results_dir) if results_dir else RESULTS_DIR)


def make_all(results_dir: Path | None = None, names: list[str] | None = None) -> list[Path]:
    """Draw the named figures (all by default); with all, those whose tables do not exist are skipped."""
    results_dir = Path(results_dir) if results_dir else RESULTS_DIR
    wanted = sorted(FIGURES) if not names or names == ["all"] else names
    made = []
    for name in wanted:
        try:
            made.append(make(name, results_dir))
        except FileNotFoundError:
            if names and names != ["all"]:
                raise
    return made
