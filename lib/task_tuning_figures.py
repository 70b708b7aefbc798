"""Task-tuning figures, drawn from results/tables/task_tuning*.csv alone.

The benchmark dot plot (``lib.tasks_figures.plot_benchmarks``) with one colour
per chain instead of per model: ``base``, ``t``, ``c-i-t``, ... and, for Curie's
classification head, the loss it was trained with. The classifier answers
without prompt shots; its rows appear in the 0-shot panel.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lib.figures import figure, read_table, save


def chain_labels(table: pd.DataFrame) -> pd.DataFrame:
    """``model`` becomes 'stage · route[ (loss)]' so that the plot's colours are the chains."""
    table = table.copy()
    label = table["stage"].astype(str) + " · " + table["route"].astype(str)
    if "loss" in table.columns:
        loss = table["loss"].fillna("").astype(str)
        label = label + loss.where(loss == "", " (" + loss + " CE)")
    table["model"] = label
    table["n_shot"] = table["n_shot"].fillna(0).astype(int)
    return table


def _plot(results_dir: Path, name: str, title: str) -> Path:
    # imported here: lib.figures imports this module while lib.tasks_figures may still be loading
    from lib.tasks_figures import plot_benchmarks

    table = read_table(results_dir, f"{name}.csv")
    return save(plot_benchmarks(chain_labels(table), title=title), results_dir, name)


@figure("task_tuning")
def task_tuning(results_dir: Path) -> Path:
    """Polish: the untuned model against task SFT and the classification head (weighted vs plain CE)."""
    return _plot(results_dir, "task_tuning", "Task tuning (pl): headline metric, 95% CI, chance")


@figure("task_tuning_tr")
def task_tuning_tr(results_dir: Path) -> Path:
    """Turkish: LlamaTurk's chains (base, t, c-i-t) on one task."""
    return _plot(results_dir, "task_tuning_tr", "LlamaTurk chains (tr): headline metric, 95% CI, chance")
