"""Figures of 03_lapt: before/after bits per character, and the validation curve.

``lapt_bpc`` is registered with ``lib.figures`` (drawn from results/tables/lapt.csv
alone); the notebook draws the same panels straight from a run's rows.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from lib.figures import figure, read_table, save

STAGE_ORDER = ["before", "after"]
PANELS = [("target", "target language (adapted to)"), ("english", "English (forgetting)")]


def _bpc_frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame = frame[(frame["metric"] == "bits_per_char") & (frame["split"] == "test")].copy()
    frame["panel"] = (frame["language"] == frame["adapted_to"]).map({True: "target", False: "english"})
    label = frame["adapted_to"].astype(str)
    for column in ("mode", "model"):  # name what differs between runs, nothing else
        if column in frame and frame[column].nunique() > 1:
            label = label + "\n" + frame[column].astype(str)
    frame["run"] = label
    return frame


def plot_before_after(rows, title: str = "LAPT: bits per character before and after (lower is better)"):
    """Two panels (target language, English), bars before/after per run, change in % on top."""
    frame = _bpc_frame(rows)
    sns.set_theme(style="whitegrid", context="notebook")
    panels = [(key, name) for key, name in PANELS if (frame["panel"] == key).any()]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (key, name) in zip(axes[0], panels):
        data = frame[frame["panel"] == key]
        order = sorted(data["run"].unique())
        sns.barplot(data=data, x="run", y="value", hue="stage", hue_order=STAGE_ORDER, order=order, ax=ax)
        for container in ax.containers:
            ax.bar_label(container, fmt="%.3f", fontsize=8)
        wide = data.pivot_table(index="run", columns="stage", values="value", aggfunc="first")
        for i, run in enumerate(order):
            if {"before", "after"} <= set(wide.columns) and run in wide.index:
                change = 100 * (wide.loc[run, "after"] - wide.loc[run, "before"]) / wide.loc[run, "before"]
                ax.annotate(f"{change:+.1f}%", (i, wide.loc[run].max() * 1.08), ha="center", fontsize=9)
        ax.set_ylim(0, data["value"].max() * 1.2)
        ax.set_title(name)
        ax.set_xlabel("run (language adapted to)")
        ax.set_ylabel("bits per character (test)")
    # one legend for both panels, below them: inside an axis it covers a bar
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.legend(handles, labels, title="stage", loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_history(history: pd.DataFrame, title: str = "validation bits per character during training"):
    """Validation bpc (and the training loss, per token in nats) against optimizer steps."""
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if "eval_bpc" in history:
        evals = history.dropna(subset=["eval_bpc"])
        ax.plot(evals["step"], evals["eval_bpc"], marker="o", label="validation bpc")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("bits per character")
    if "loss" in history:
        twin = ax.twinx()
        losses = history.dropna(subset=["loss"])
        twin.plot(losses["step"], losses["loss"], color="grey", alpha=0.5, label="train loss (nats/token)")
        twin.set_ylabel("train loss (nats/token)")
        twin.grid(False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


@figure("lapt_bpc")
def lapt_bpc(results_dir: Path) -> Path:
    """Before/after bits per character of every collected LAPT run (results/tables/lapt.csv)."""
    table = read_table(results_dir, "lapt.csv")
    return save(plot_before_after(table), results_dir, "lapt_bpc")


@figure("lapt_cpu_bpc")
def lapt_cpu_bpc(results_dir: Path) -> Path:
    """The same for the longer run of the cpu profile (results/tables/lapt_cpu.csv)."""
    table = read_table(results_dir, "lapt_cpu.csv")
    title = "LAPT, cpu profile (1M tokens): bits per character before and after"
    return save(plot_before_after(table, title=title), results_dir, "lapt_cpu_bpc")
