"""Every figure, drawn from results tables alone (figures never train or evaluate).

``python -m lib figures`` regenerates all of them; each function reads
``<results>/tables/*.csv`` and writes ``<results>/figures/<name>.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from lib.paths import RESULTS_DIR  # noqa: E402

FIGURES: dict[str, Callable[[Path], Path]] = {}


class FigureError(RuntimeError):
    pass


def figure(name: str):
    def register(fn):
        FIGURES[name] = fn
        return fn
    return register


def make(name: str, results_dir: Path | None = None) -> Path:
    if name not in FIGURES:
        raise FigureError(f"unknown figure {name!r}; known: {', '.join(sorted(FIGURES))}")
    # Each figure starts from matplotlib's defaults and its theme ends with it: a figure is then
    # the same bytes drawn alone (by a sweep) or after others (python -m lib figures).
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        return FIGURES[name](Path(results_dir) if results_dir else RESULTS_DIR)


def make_all(results_dir: Path | None = None, names: list[str] | None = None) -> list[Path]:
    """Draw the named figures (all by default) whose tables exist."""
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


def read_table(results_dir: Path, name: str) -> pd.DataFrame:
    path = results_dir / "tables" / name
    if not path.is_file():
        raise FileNotFoundError(f"table {path} does not exist; run the sweep that writes it first")
    return pd.read_csv(path)


def save(fig, results_dir: Path, name: str) -> Path:
    path = results_dir / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    # No software/date metadata, so an unchanged figure is byte-identical on rerun.
    fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


@figure("baseline_bpc")
def baseline_bpc(results_dir: Path) -> Path:
    """Bits per character and characters per token of each model, per language."""
    table = read_table(results_dir, "baseline.csv")
    table = table[table["split"] == "test"]
    if "source" in table.columns:
        table = table[table["source"] == "all"]
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = [("bits_per_char", "bits per character (lower is better)"),
              ("chars_per_token", "characters per token (higher = fewer tokens)")]
    for ax, (metric, title) in zip(axes, panels):
        data = table[table["metric"] == metric]
        sns.barplot(data=data, x="language", y="value", hue="model", ax=ax,
                    order=sorted(data["language"].unique()), hue_order=sorted(data["model"].unique()))
        for container in ax.containers:
            ax.bar_label(container, fmt="%.2f", fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("language (test split)")
        ax.set_ylabel(metric)
    axes[1].get_legend().remove()
    sns.move_legend(axes[0], "upper center", bbox_to_anchor=(1.1, -0.18), ncol=4, title=None, frameon=False)
    fig.suptitle("Baseline: packaged models on held-out target-language text")
    return save(fig, results_dir, "baseline_bpc")


# Figures of later stages register themselves on import.
from lib import lapt_figures, task_tuning_figures, tasks_figures  # noqa: E402, F401
