"""The LEP chain's table (results/tables/lep_chain_ru.csv) as one row per model, and the
conversion model against T on the bar the LEP issue sets (README "The LEP chain on Russian").

    .venv/bin/python scripts/lep_chain_summary.py [--results-dir results] [--table lep_cpu_donor_ru.csv]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.paths import RESULTS_DIR  # noqa: E402
from lib.plotting import read_table  # noqa: E402
from lib.stages import lep_propagate as LEP  # noqa: E402


def checks(summary) -> list[tuple[str, str, bool]]:
    """(model, what, met) for every conversion model and calibrated model against the bar."""
    rows = summary.set_index("model")
    out = []
    for model in rows.index:
        if not model.startswith("LEP"):
            continue
        row = rows.loc[model]
        if "conversion" in model and "calibrated" not in model:
            for column, bar, what in (("score_vs_T", LEP.KEEPS_ACCURACY, "mean benchmark score vs T"),
                                      ("chars_per_token_vs_T", LEP.CHARS_PER_TOKEN_GAIN, "chars/token vs T"),
                                      ("speed_vs_T", LEP.SPEED_GAIN, "chars/s vs T")):
                if column in row and row[column] == row[column]:
                    out.append((model, f"{what} {row[column]:.2f} (bar {bar})", bool(row[column] >= bar)))
        if "calibrated" in model and "copy_ru" in row and row["copy_ru"] == row["copy_ru"]:
            out.append((model, f"copy ru {row['copy_ru']:.3f} (bar {LEP.COPY_AFTER_CALIBRATION})",
                        bool(row["copy_ru"] >= LEP.COPY_AFTER_CALIBRATION)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--table", default="lep_chain_ru.csv",
                        help="a table of the chain's shape under <results-dir>/tables (default lep_chain_ru.csv)")
    args = parser.parse_args(argv)
    summary = LEP.chain_summary(read_table(args.results_dir, args.table))
    print(summary.to_markdown(index=False, floatfmt=".3f"))
    print()
    for model, what, met in checks(summary):
        print(f"{'met    ' if met else 'NOT met'}  {model}: {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
