"""The benchmark dot plot: headline metric, bootstrap interval, chance and majority per task,
one colour per model (or per chain, for the task-tuning tables)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

# One headline metric per kind of task; chrF is shown on a 0-1 scale beside the others.
PRIMARY = {"multiple_choice": "acc", "classification": "macro_f1", "generation": "chrf", "copy": "copy_rate"}
_SCALE = {"chrf": 0.01}


def primary_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The headline metric of each (model, task, language, n_shot), on a 0-1 scale."""
    if "kind" in table.columns:
        wanted = table["kind"].map(PRIMARY)
        rows = table[table["metric"] == wanted].copy()
    else:
        rows = table[table["metric"].isin(set(PRIMARY.values()))].copy()
    for metric, factor in _SCALE.items():
        hit = rows["metric"] == metric
        columns = [c for c in ("value", "ci_low", "ci_high", "chance", "majority") if c in rows.columns]
        rows.loc[hit, columns] = rows.loc[hit, columns] * factor
    rows["label"] = rows["task"] + " · " + rows["language"] + " (" + rows["metric"] + ")"
    return rows


def plot_benchmarks(table: pd.DataFrame, title: str = "Benchmarks: headline metric with 95% CI"):
    """Dot plot: one row per task and language, one panel per number of shots,
    one colour per model, bootstrap intervals as bars, chance as a black tick and
    the score of always giving the most frequent answer as a grey cross."""
    rows = primary_rows(table)
    if rows.empty:
        raise ValueError("no headline-metric rows to plot (need acc, macro_f1 or chrf rows)")
    shots = sorted(rows["n_shot"].unique())
    models = sorted(rows["model"].unique())
    labels = sorted(rows["label"].unique())
    y_of = {label: i for i, label in enumerate(labels)}
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(shots), figsize=(5 * len(shots) + 3, 0.45 * len(labels) + 1.8),
                             sharey=True, squeeze=False)
    offsets = np.linspace(-0.25, 0.25, len(models)) if len(models) > 1 else [0.0]
    for ax, n_shot in zip(axes[0], shots):
        part = rows[rows["n_shot"] == n_shot]
        for color, (model, offset) in enumerate(zip(models, offsets)):
            data = part[part["model"] == model]
            y = np.array([y_of[label] for label in data["label"]]) + offset
            low = (data["value"] - data["ci_low"]).clip(lower=0).fillna(0)
            high = (data["ci_high"] - data["value"]).clip(lower=0).fillna(0)
            ax.errorbar(data["value"], y, xerr=[low, high], fmt="o", color=colors(color), label=model,
                        capsize=2, markersize=4)
        chance = part.dropna(subset=["chance"]).drop_duplicates("label")
        ax.scatter(chance["chance"], [y_of[label] for label in chance["label"]], marker="|", s=250,
                   color="black", label="chance", zorder=3)
        if "majority" in part.columns:
            majority = part.dropna(subset=["majority"]).drop_duplicates("label")
            ax.scatter(majority["majority"], [y_of[label] for label in majority["label"]], marker="x",
                       s=30, color="grey", label="most frequent answer", zorder=3)
        ax.set_title(f"{n_shot}-shot")
        ax.set_xlim(0, 1)
        ax.set_xlabel("score (0-1)")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(labels)), labels)
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
