"""Shared figure plumbing: results tables in, PNG files out, the same bytes on every rerun.

No backend is chosen here: notebooks show figures inline, and the command line
(``python -m lib``) picks the non-interactive Agg backend for itself.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pandas as pd


class FigureError(RuntimeError):
    pass


@contextmanager
def default_style():
    """Matplotlib's defaults for the figure drawn inside, restored afterwards: a figure is then
    the same bytes drawn alone (by a sweep) or after others (``python -m lib figures``)."""
    import matplotlib

    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        yield


def read_table(results_dir: Path, name: str) -> pd.DataFrame:
    path = Path(results_dir) / "tables" / name
    if not path.is_file():
        raise FileNotFoundError(f"table {path} does not exist; run the sweep that writes it first")
    return pd.read_csv(path)


def save(fig, results_dir: Path, name: str) -> Path:
    """``<results_dir>/figures/<name>.png``, then the figure is closed (figure files, not windows)."""
    import matplotlib.pyplot as plt

    path = Path(results_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    # No software/date metadata, so an unchanged figure is byte-identical on rerun.
    fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path
