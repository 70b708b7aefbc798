from __future__ import annotations

import pandas as pd
import pytest

from lib.stages import figures


def write_baseline_table(results_dir):
    rows = []
    for model, bpc, cpt in (("small", 2.2, 1.9), ("big", 1.7, 3.2)):
        for language in ("pl", "tr"):
            rows += [
                {"model": model, "language": language, "split": "test", "metric": "bits_per_char", "value": bpc},
                {"model": model, "language": language, "split": "test", "metric": "chars_per_token", "value": cpt},
            ]
    (results_dir / "tables").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(results_dir / "tables" / "baseline.csv", index=False)


def test_baseline_figure_is_drawn_from_the_table_and_reproducible(tmp_path):
    write_baseline_table(tmp_path)
    path = figures.make("baseline_bpc", tmp_path)
    assert path == tmp_path / "figures" / "baseline_bpc.png"
    first = path.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    figures.make("baseline_bpc", tmp_path)
    assert path.read_bytes() == first


def test_a_figure_does_not_depend_on_the_figures_drawn_before_it(tmp_path):
    """The sweep draws one figure, `python -m lib figures` all of them: the same bytes either way."""
    import matplotlib

    write_baseline_table(tmp_path)
    alone = figures.make("baseline_bpc", tmp_path).read_bytes()
    matplotlib.rcParams.update({"savefig.facecolor": "red", "font.size": 20})  # a theme left behind
    assert figures.make("baseline_bpc", tmp_path).read_bytes() == alone
    assert matplotlib.rcParams["font.size"] == 20  # and the caller's own settings are left as they were
    matplotlib.rcdefaults()


def test_unknown_figure_names_known_ones(tmp_path):
    with pytest.raises(figures.FigureError, match="unknown figure 'nope'.*baseline_bpc"):
        figures.make("nope", tmp_path)


def test_missing_table_says_which(tmp_path):
    with pytest.raises(FileNotFoundError, match="baseline.csv"):
        figures.make("baseline_bpc", tmp_path)
    assert figures.make_all(tmp_path) == []  # 'all' draws what it can
