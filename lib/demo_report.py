"""The demo's before/after view (``python -m lib demo``, ``params/sweeps/demo.yaml``): one table
and one figure from the demo sweep's table, and the generated samples from 08's run record.

The sweep's table holds two kinds of rows: 03_lapt's (``stage`` before/after, one per text and
metric) and 08_evaluate's (``model`` labelled before/after, one per task and metric, with the
generation speed columns). ``before_after`` puts them side by side, one line per measure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lib.corpus.general_english import SOURCE as ENGLISH_GENERAL  # 03's split name of general English

STAGES = ("before", "after")
COLUMNS = ["measure", "text", "before", "after", "change_%", "better"]


class DemoReportError(ValueError):
    pass


def _lapt_rows(table: pd.DataFrame) -> pd.DataFrame:
    if "stage" not in table or "split" not in table:
        raise DemoReportError("the demo table has no 03_lapt rows (columns stage and split)")
    rows = table[table["stage"].isin(STAGES) & table["split"].isin(["test", ENGLISH_GENERAL])]
    if rows.empty:
        raise DemoReportError("the demo table has no 03_lapt test rows")
    return rows


def _texts(lapt: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(language, split, description) of each scored text: the adapted-to language first."""
    target = str(lapt["adapted_to"].iloc[0])
    out = [(target, "test", f"{target} test split (the language adapted to)")]
    present = set(zip(lapt["language"], lapt["split"]))
    if ("en", ENGLISH_GENERAL) in present:
        out.append(("en", ENGLISH_GENERAL, "general English, Debian fortunes (forgetting)"))
    if target != "en" and ("en", "test") in present:
        out.append(("en", "test", "en LibreOffice help (English side of the training domain)"))
    return out


def _value(rows: pd.DataFrame, stage: str, metric: str, column: str = "value") -> float | None:
    hit = rows[(rows["stage"] == stage) & (rows["metric"] == metric)]
    return float(hit[column].iloc[0]) if len(hit) else None


def before_after(table: pd.DataFrame) -> pd.DataFrame:
    """One line per measure: bits per character and characters per token of every text 03 scored,
    then every task metric and the generation speed of 08 (rows labelled before/after)."""
    lapt = _lapt_rows(table)
    lines: list[dict[str, Any]] = []
    for language, split, text in _texts(lapt):
        rows = lapt[(lapt["language"] == language) & (lapt["split"] == split)]
        bpc = {s: _value(rows, s, "bits_per_char") for s in STAGES}
        lines.append({"measure": "bits per character", "text": text, **bpc, "lower_is_better": True})
        chars = {s: _value(rows, s, "bits_per_char", "n_chars") for s in STAGES}
        tokens = {s: _value(rows, s, "bits_per_char", "n_tokens") for s in STAGES}
        if all(chars[s] and tokens[s] for s in STAGES):
            lines.append({"measure": "characters per token", "text": text,
                          **{s: chars[s] / tokens[s] for s in STAGES}, "lower_is_better": False})
    if "task" not in table:
        raise DemoReportError("the demo table has no 08_evaluate rows (column task)")
    evaluated = table[table["model"].isin(STAGES) & table["task"].notna()]
    for (task, n_shot, metric), rows in evaluated.groupby(["task", "n_shot", "metric"], sort=False):
        values = {s: rows.loc[rows["model"] == s, "value"] for s in STAGES}
        if any(v.empty for v in values.values()):
            continue
        n = int(rows["n"].iloc[0])
        lines.append({"measure": f"{task} {int(n_shot)}-shot {metric}", "text": f"{n} test items",
                      **{s: float(v.iloc[0]) for s, v in values.items()}, "lower_is_better": False})
    if "chars_per_second" in evaluated:
        speed = {s: evaluated.loc[evaluated["model"] == s, "chars_per_second"].dropna() for s in STAGES}
        if all(len(v) for v in speed.values()):
            lines.append({"measure": "characters generated per second", "text": "the same test paragraphs",
                          **{s: float(v.iloc[0]) for s, v in speed.items()}, "lower_is_better": False})
    for line in lines:
        before, after = line["before"], line["after"]
        line["change_%"] = 100 * (after - before) / before if before else None
        improved = after < before if line.pop("lower_is_better") else after > before
        line["better"] = "same" if after == before else ("yes" if improved else "no")
    return pd.DataFrame(lines, columns=COLUMNS)


def samples(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """The first generated continuation of each model (08's ``timings.speed[].samples``):
    ``[{"model", "prompt", "continuation"}, ...]``, empty when the speed measure did not run."""
    out = []
    for entry in (metrics.get("timings") or {}).get("speed") or []:
        for sample in (entry.get("samples") or [])[:1]:
            out.append({"model": str(entry["model"]), **sample})
    return out


def markdown(frame: pd.DataFrame, generated: list[dict[str, str]], *, prompt_chars: int = 240) -> str:
    """The before/after table and the samples, for a terminal."""
    shown = frame.astype(object).where(frame.notna(), None)
    parts = ["## Before and after adaptation", shown.to_markdown(index=False, floatfmt=".4g", missingval="")]
    if generated:
        prompt = generated[0]["prompt"]
        cut = prompt if len(prompt) <= prompt_chars else "..." + prompt[-prompt_chars:]
        parts += ["## The same test paragraph, continued greedily by each model", f"prompt: {cut}"]
        parts += [f"{g['model']}: {g['continuation'].strip()}" for g in generated]
    return "\n\n".join(parts)


def plot(table: pd.DataFrame):
    """Two panels: bits per character of each text before/after, and each task metric before/after."""
    import matplotlib.pyplot as plt

    frame = before_after(table)
    bpc = frame[frame["measure"] == "bits per character"]
    tasks = frame[~frame["measure"].isin(["bits per character", "characters per token",
                                          "characters generated per second"])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [max(len(bpc), 1), 1.3]})
    for ax, part, ylabel in ((axes[0], bpc, "bits per character (lower is better)"),
                             (axes[1], tasks, "score (higher is better)")):
        long = part.melt(id_vars=["measure", "text"], value_vars=list(STAGES), var_name="model", value_name="v")
        labels = [t.split(" (")[0] if ax is axes[0] else m for m, t in zip(part["measure"], part["text"])]
        width = 0.38
        for i, stage in enumerate(STAGES):
            values = long[long["model"] == stage]["v"].to_numpy()
            xs = [x + (i - 0.5) * width for x in range(len(values))]
            bars = ax.bar(xs, values, width, label=stage)
            ax.bar_label(bars, fmt="%.3f", fontsize=8)
        ax.set_xticks(range(len(labels)), [label.replace(" ", "\n", 2) for label in labels], fontsize=8)
        ax.set_ylabel(ylabel)
    axes[0].set_title("language modelling")
    axes[1].set_title("benchmark")
    axes[0].legend(title="model")
    fig.suptitle("The demo: SmolLM2 before and after LoRA LAPT on the target language")
    fig.tight_layout()
    return fig


def figure(results_dir: Path, table_name: str = "demo.csv") -> Path:
    """``<results>/figures/demo.png`` from ``<results>/tables/demo.csv``."""
    from lib.plotting import read_table, save

    return save(plot(read_table(results_dir, table_name)), results_dir, "demo")
