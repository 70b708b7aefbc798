"""One paper's experiments as one command, and its reported figures beside ours:
``python -m lib reproduce curie|llamaturk|lep [--profile P] [--tables-only]``.

``params/papers/<paper>.yaml`` names the paper's sweeps, run in that order through
``lib.sweep.run_sweep`` (complete runs are skipped, so runs shared between sweeps run once and
an interrupted reproduce resumes), optionally ``larger``: for a default sweep, the whole grid that
runs in its place with ``--profile cpu`` or ``gpu`` (lep: its default fits an hour on a 2-core CPU,
the whole grid takes hours; a figure's selector then reads the larger sweep's table, which has the
same row labels), and the figures the paper reports: each with its source, its
unit, the row of ours that corresponds (``ours``) and what differs. Every sweep is planned and
checked before the first run starts. The comparison goes to ``<results>/tables/paper_<paper>.csv``:
``results/`` when every sweep ran as its committed table was made (or ``--results-dir``), else a
directory under the runs area, as run_sweep does for its own tables.

``ours`` selects one of:

- a table row: ``{sweep, where: {column: value or [values]}, metric}``; exactly one row must
  match, or several with ``agg: mean``;
- a cost field (``wall_hours``, ``device_hours``, ``energy_kwh``, ``co2_kg``, ``tokens_trained``)
  summed over the sweep's complete runs of one ``stage`` (``{sweep, stage, cost}``);
- a ``metrics.json`` entry (dotted path) averaged over those runs (``{sweep, stage, run_metric}``).

Every row also carries the cost of its sweep's grid (the sum over its complete runs, with
``runs_costed`` saying how many of the planned runs have a cost record). Costs come from the cost
table each sweep writes beside its table (``lib.sweep.collect_costs``), not from the run
directories, so ``--tables-only`` on a fresh clone shows the committed grid's cost.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lib.params import load_yaml
from lib.paths import PARAMS_DIR, PROJ_ROOT, RESULTS_DIR, runs_dir
from lib.sweep import Sweep, cost_table_path, load_sweep, run_sweep, scratch_dir, write_table

PAPERS_DIR = PARAMS_DIR / "papers"
PAPERS = ("curie", "llamaturk", "lep")
PAPER_KEYS = {"paper", "sweeps", "larger", "figures", "source", "russian_chars_per_token"}  # the last two: lep.yaml's
# profiles under which a paper's `larger` sweeps run in place of its default ones (the default and
# tiny profiles run `sweeps` as listed)
LARGER_PROFILES = ("cpu", "gpu")
FIGURE_KEYS = {"id", "claim", "value", "unit", "source", "ours", "differs"}
OURS_KEYS = {"sweep", "where", "metric", "agg", "stage", "cost", "run_metric"}
COST_FIELDS = ("wall_hours", "device_hours", "energy_kwh", "co2_kg", "tokens_trained")
COLUMNS = ["figure", "claim", "paper_value", "paper_unit", "paper_source", "our_value", "our_metric", "our_rows",
           "status", "differs", "sweep", "our_table", "our_selector", "runs_costed", *COST_FIELDS]
NOT_RUN = "not run yet"


class ReproduceError(ValueError):
    pass


@dataclass(frozen=True)
class Figure:
    id: str
    claim: str
    value: float | None
    unit: str
    source: str
    differs: str
    ours: dict[str, Any] | None


@dataclass(frozen=True)
class Paper:
    name: str
    title: str
    sweeps: list[str]
    figures: list[Figure]
    larger: dict[str, str]  # a default sweep -> the whole grid that replaces it under LARGER_PROFILES

    def sweeps_for(self, profile: str | None) -> list[str]:
        """The sweeps a reproduce with this profile runs, in order."""
        if profile in LARGER_PROFILES:
            return [self.larger.get(name, name) for name in self.sweeps]
        return list(self.sweeps)


def load_paper(name: str) -> Paper:
    """params/papers/<name>.yaml, checked: known keys, a source and a 'differs' for every figure,
    and every ``ours`` naming one of the paper's sweeps with one kind of selector."""
    if name not in PAPERS:
        raise ReproduceError(f"unknown paper {name!r}; known: {', '.join(PAPERS)}")
    path = PAPERS_DIR / f"{name}.yaml"
    spec = load_yaml(path.read_text(encoding="utf-8"), str(path))
    _known(spec, PAPER_KEYS, path)
    sweeps = list(spec.get("sweeps") or [])
    for sweep in sweeps:
        if not (PARAMS_DIR / "sweeps" / f"{sweep}.yaml").is_file():
            raise ReproduceError(f"{path}: sweep {sweep!r} is not a file in params/sweeps/")
    larger = spec.get("larger") or {}
    if not isinstance(larger, dict):
        raise ReproduceError(f"{path}: larger must map a sweep of `sweeps` to the sweep that replaces it")
    for small, big in larger.items():
        if small not in sweeps:
            raise ReproduceError(f"{path}: larger names {small!r}, which is not one of the paper's sweeps {sweeps}")
        if not (PARAMS_DIR / "sweeps" / f"{big}.yaml").is_file():
            raise ReproduceError(f"{path}: larger sweep {big!r} is not a file in params/sweeps/")
    figures = []
    for entry in spec.get("figures") or []:
        _known(entry, FIGURE_KEYS, f"{path} figure {entry.get('id')!r}")
        where = f"{path} figure {entry.get('id')!r}"
        for key in ("id", "claim", "unit", "source", "differs"):
            if not str(entry.get(key) or "").strip():
                raise ReproduceError(f"{where}: {key!r} is missing")
        value = entry.get("value")
        if value is not None and not isinstance(value, int | float):
            raise ReproduceError(f"{where}: value must be a number or null, got {value!r}")
        ours = entry.get("ours")
        if ours is not None:
            _check_ours(ours, sweeps, where)
        figures.append(Figure(str(entry["id"]), str(entry["claim"]), value, str(entry["unit"]),
                              str(entry["source"]), " ".join(str(entry["differs"]).split()), ours))
    ids = [f.id for f in figures]
    if not figures or len(set(ids)) != len(ids):
        raise ReproduceError(f"{path}: figures must be a non-empty list with unique ids")
    return Paper(name, str(spec.get("paper") or name), sweeps, figures, {str(k): str(v) for k, v in larger.items()})


def _known(spec: Any, keys: set[str], where: Any) -> None:
    if not isinstance(spec, dict):
        raise ReproduceError(f"{where} must be a mapping")
    unknown = set(spec) - keys
    if unknown:
        raise ReproduceError(f"unknown key(s) {sorted(unknown)} in {where}; known: {sorted(keys)}")


def _check_ours(ours: Any, sweeps: list[str], where: str) -> None:
    _known(ours, OURS_KEYS, f"{where} ours")
    if ours.get("sweep") not in sweeps:
        raise ReproduceError(f"{where}: ours.sweep must be one of the paper's sweeps {sweeps}")
    kinds = [k for k in ("metric", "cost", "run_metric") if k in ours]
    if len(kinds) != 1:
        raise ReproduceError(f"{where}: ours needs exactly one of metric (with where), cost, run_metric")
    if kinds[0] == "metric" and not isinstance(ours.get("where"), dict):
        raise ReproduceError(f"{where}: ours.metric needs ours.where (column filters)")
    if kinds[0] != "metric" and not ours.get("stage"):
        raise ReproduceError(f"{where}: ours.{kinds[0]} needs ours.stage (whose runs to read)")
    if kinds[0] == "cost" and ours["cost"] not in COST_FIELDS:
        raise ReproduceError(f"{where}: ours.cost must be one of {', '.join(COST_FIELDS)}")
    if ours.get("agg") not in (None, "mean"):
        raise ReproduceError(f"{where}: ours.agg must be mean (or left out), got {ours['agg']!r}")


# ---------------------------------------------------------------- running


def plan(paper: Paper, profile: str | None = None) -> dict[str, Sweep]:
    """Every sweep the profile runs, loaded and checked (nothing runs): a typo fails before any run."""
    return {name: load_sweep(PARAMS_DIR / "sweeps" / f"{name}.yaml", profile=profile)
            for name in paper.sweeps_for(profile)}


def tables_dir(sweep: Sweep, results_dir: Path | None) -> Path:
    """Where run_sweep writes this sweep's table (the same rule as run_sweep's)."""
    base = results_dir if results_dir else (RESULTS_DIR if sweep.as_committed else scratch_dir(sweep))
    return Path(base) / "tables"


def comparison_path(paper: Paper, sweeps: dict[str, Sweep], results_dir: Path | None) -> Path:
    """results/ only when every sweep is as committed; a tiny or changed run goes to the runs area."""
    if results_dir:
        return Path(results_dir) / "tables" / f"paper_{paper.name}.csv"
    if all(s.as_committed for s in sweeps.values()):
        return RESULTS_DIR / "tables" / f"paper_{paper.name}.csv"
    key = json.dumps(sorted((n, s.profile) for n, s in sweeps.items()), default=str)
    folder = f"{paper.name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    return runs_dir() / "papers" / folder / "tables" / f"paper_{paper.name}.csv"


@dataclass(frozen=True)
class Comparison:
    paper: Paper
    sweeps: dict[str, Sweep]
    table: pd.DataFrame
    path: Path  # where the table was written
    results_dir: Path | None = None  # where the sweeps' tables (and cost tables) were read


def reproduce(name: str, *, profile: str | None = None, results_dir: Path | None = None,
              tables_only: bool = False, force: bool = False, launch=None, log=print) -> Comparison:
    """Run the paper's sweeps in order (unless ``tables_only``), then write its comparison table."""
    paper = load_paper(name)
    sweeps = plan(paper, profile)
    if not tables_only:
        for sweep_name in sweeps:
            log(f"== {paper.name}: sweep {sweep_name}")
            run_sweep(PARAMS_DIR / "sweeps" / f"{sweep_name}.yaml", profile=profile, results_dir=results_dir,
                      force=force, launch=launch, log=log)
    table = compare(paper, sweeps, results_dir)
    path = comparison_path(paper, sweeps, results_dir)
    write_table(table, path)
    return Comparison(paper, sweeps, table, path, results_dir)


# ---------------------------------------------------------------- the comparison


def compare(paper: Paper, sweeps: dict[str, Sweep], results_dir: Path | None = None) -> pd.DataFrame:
    """One row per paper figure, in the paper file's order: the paper's value and ours, with the
    cost of our sweep's grid. A sweep whose table is not there yet gives status 'not run yet'."""
    tables: dict[str, pd.DataFrame | None] = {}
    rows = []
    for figure in paper.figures:
        row: dict[str, Any] = {"figure": figure.id, "claim": figure.claim, "paper_value": figure.value,
                               "paper_unit": figure.unit, "paper_source": figure.source, "differs": figure.differs}
        ours = figure.ours
        if ours is None:
            rows.append(row | {"status": "paper only"})
            continue
        name = ours["sweep"] if ours["sweep"] in sweeps else paper.larger[ours["sweep"]]  # the grid that ran
        sweep = sweeps[name]
        row |= {"sweep": name, **grid_cost(sweep, results_dir)}
        if "metric" in ours:
            path = tables_dir(sweep, results_dir) / sweep.table
            if name not in tables:
                tables[name] = _read(path)
            row |= {"our_table": _shown(path), "our_metric": ours["metric"],
                    "our_selector": _selector_text(ours)}
            value, n, status = select(tables[name], ours)
        else:
            field = ours.get("cost") or ours["run_metric"]
            row |= {"our_metric": field, "our_selector": f"runs of {ours['stage']}"}
            value, n, status = _from_runs(sweep, ours, results_dir)
        if status == "compared" and figure.value is None:
            status = "ours only"
        rows.append(row | {"our_value": value, "our_rows": n, "status": status})
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    for column in ("our_rows", "tokens_trained"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _shown(path: Path) -> str:
    """Relative to the repository when inside it, so the committed comparison names no machine's paths."""
    return str(path.relative_to(PROJ_ROOT)) if path.is_relative_to(PROJ_ROOT) else str(path)


def _read(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype=str, keep_default_na=False)  # filters compare text, as the YAML is written
    table["value"] = pd.to_numeric(table["value"], errors="coerce")
    return table


def select(table: pd.DataFrame | None, ours: dict[str, Any]) -> tuple[float | None, int, str]:
    """(value, rows used, status) of a table selector."""
    if table is None:
        return None, 0, NOT_RUN
    hit = pd.Series(True, index=table.index)
    for column, wanted in {**ours["where"], "metric": ours["metric"]}.items():
        if column not in table.columns:
            return None, 0, f"no row: the table has no column {column!r}"
        options = wanted if isinstance(wanted, list) else [wanted]
        hit &= table[column].isin([str(v) for v in options])
    values = table.loc[hit, "value"].dropna()
    if values.empty:
        return None, 0, "no row matches"
    if len(values) > 1 and ours.get("agg") != "mean":
        return None, len(values), f"ambiguous: {len(values)} rows match"
    return float(values.mean()), len(values), "compared"


def _selector_text(ours: dict[str, Any]) -> str:
    parts = [f"{k}={'|'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in ours["where"].items()]
    return " ".join(parts) + (" (mean)" if ours.get("agg") else "")


def _from_runs(sweep: Sweep, ours: dict[str, Any], results_dir: Path | None) -> tuple[float | None, int, str]:
    """A cost field summed over the complete runs of one stage (from the sweep's cost table), or a
    metrics.json entry averaged over those runs (from the run directories)."""
    if "cost" in ours:
        costs = read_costs(sweep, results_dir)
        if costs is None:
            return None, 0, f"no cost table of {sweep.name} here"
        done = costs[costs["stage"] == ours["stage"]]
        if done.empty:
            return None, 0, f"no complete {ours['stage']} run in the cost table of {sweep.name}"
        value = _cost_sums(done)[ours["cost"]]
        return value, len(done), "compared" if value is not None else "no cost recorded"
    from lib import runs

    done_dirs = [r.run_dir for r in sweep.runs if r.stage == ours["stage"] and runs.is_complete(r.run_dir)]
    if not done_dirs:
        return None, 0, f"no complete {ours['stage']} run of this grid here"
    values = [_dotted(runs.load_metrics(d), ours["run_metric"]) for d in done_dirs]
    values = [v for v in values if isinstance(v, int | float)]
    if not values:
        return None, 0, f"no {ours['run_metric']} in the runs' metrics.json"
    return sum(values) / len(values), len(values), "compared"


def _dotted(tree: Any, path: str) -> Any:
    for key in path.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def read_costs(sweep: Sweep, results_dir: Path | None) -> pd.DataFrame | None:
    """The sweep's cost table (one row per complete run), or None where the sweep has not written one."""
    path = cost_table_path(tables_dir(sweep, results_dir) / sweep.table)
    return pd.read_csv(path) if path.is_file() else None


def grid_cost(sweep: Sweep, results_dir: Path | None = None) -> dict[str, Any]:
    """The cost of the sweep's grid: each field summed over its complete runs that recorded it."""
    costs = read_costs(sweep, results_dir)
    return _costed(costs, len(sweep.runs))


def paper_cost(sweeps: dict[str, Sweep], results_dir: Path | None = None) -> dict[str, Any]:
    """The whole paper's cost: every run of its sweeps once (sweeps share runs, e.g. 01's corpora)."""
    planned = {r.run_dir.name for s in sweeps.values() for r in s.runs}
    tables = [t for t in (read_costs(s, results_dir) for s in sweeps.values()) if t is not None]
    costs = pd.concat(tables).drop_duplicates("run_id") if tables else None
    return _costed(costs, len(planned))


def _costed(costs: pd.DataFrame | None, planned: int) -> dict[str, Any]:
    if costs is None:
        costs = pd.DataFrame(columns=["wall_seconds"])
    costed = int(costs["wall_seconds"].notna().sum())
    return {"runs_costed": f"{costed}/{planned}", **_cost_sums(costs)}


def _cost_sums(costs: pd.DataFrame) -> dict[str, float | int | None]:
    def total(key: str) -> float | None:
        values = costs[key].dropna() if key in costs else pd.Series(dtype=float)
        return float(values.sum()) if len(values) else None

    wall = total("wall_seconds")
    tokens = total("tokens_trained")
    return {"wall_hours": wall / 3600 if wall is not None else None, "device_hours": total("device_hours"),
            "energy_kwh": total("energy_kwh"), "co2_kg": total("co2_kg"),
            "tokens_trained": int(tokens) if tokens is not None else None}


def markdown(comparison: Comparison) -> str:
    """The comparison for a terminal: the figures, then the cost of each sweep's grid and in all."""
    paper, table, sweeps = comparison.paper, comparison.table, comparison.sweeps
    shown = table[["figure", "paper_value", "paper_unit", "our_value", "our_metric", "status", "differs"]]
    where = comparison.results_dir
    costs = pd.DataFrame([{"sweep": name, **grid_cost(s, where)} for name, s in sweeps.items()]
                         + [{"sweep": "all (shared runs once)", **paper_cost(sweeps, where)}])
    return "\n\n".join([f"## {paper.title}: the paper's figures beside ours", _md(shown),
                        "## Cost of the grid (complete runs that recorded a cost)", _md(costs)])


def _md(frame: pd.DataFrame) -> str:
    blank = frame.astype(object).where(frame.notna(), None)  # empty cells, not "nan"
    return blank.to_markdown(index=False, floatfmt=".4g", missingval="")
