"""Sweeps: a YAML file expands into runs; finished runs are skipped; every
finished run's metric rows land in one tidy long table.

A sweep file::

    name: baseline
    table: baseline.csv            # under <results>/tables/
    figures: [baseline_bpc]        # regenerated from the table at the end
    steps:
      - notebook: 01_prepare_data
        grid: {language: [pl, tr, ru]}
      - notebook: 02_baseline_eval
        params: {models: [smollm2-135m-instruct, gemma3-270m]}
        grid: {language: [pl, tr, ru]}
        collect: true              # this step's rows go into the table

Chains (LlamaTurk's c -> i -> t): a step with an ``id`` can be named by a later
step's parameter as ``@id``, which becomes that step's run directory (a run
directory is a model for every later stage)::

      - id: c
        notebook: 03_lapt
        params: {language: tr}
      - id: ci
        notebook: 05_instruction_tuning
        params: {model: "@c", language: tr}

A referenced step must expand to exactly one run and come earlier in the file.
A step's ``label`` (a string) names its rows in the table (column ``label``) and figures,
where the varying parameters alone (a run directory as a model) would not say what it is.

Every run's parameters are resolved and validated before the first run
starts, so a typo in the last step fails in a second, not after an hour.

Runs that do not read each other's output can run at once (``--workers``, ``--devices``,
``--launcher``): lib/scheduling.py decides which waits for which, lib/launchers.py where they run.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lib import runs, stages
from lib.params import ParamsError, field_names, load_yaml
from lib.paths import RESULTS_DIR, runs_dir

if TYPE_CHECKING:
    from lib.launchers import Launch

SWEEP_KEYS = {"name", "table", "figures", "steps", "description", "profile"}
STEP_KEYS = {"id", "notebook", "params", "profiles", "grid", "collect", "label"}
REFERENCE = re.compile(r"^@([A-Za-z0-9_.-]+)$")
LEADING_COLUMNS = ["model", "language", "task", "split", "source", "stage", "n_shot", "metric", "value"]


class SweepError(ValueError):
    pass


@dataclass
class PlannedRun:
    stage: str
    params: Any
    varying: dict[str, Any]
    collect: bool
    label: str = ""  # the step's name for its rows in tables and figures ("" = none)
    run_dir: Path = field(init=False)


@dataclass
class Sweep:
    name: str
    table: str
    figures: list[str]
    runs: list[PlannedRun]
    profile: str | None = None  # the profile the runs resolve with
    made_for: str | None = None  # the profile the committed table was made for (the file's own)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def as_committed(self) -> bool:
        """Whether these runs are the ones the committed table holds (its profile, no overrides)."""
        return self.profile == self.made_for and not self.overrides


def _profile_params(spec: Any, where: str) -> dict[str, dict[str, Any]]:
    """A step's ``profiles``: parameters that apply over its ``params`` only under one profile (a
    tiny corpus cannot offer what the full one does), so the other profiles' runs keep their ids."""
    if spec is None:
        return {}
    known = stages.known_profiles()
    if not isinstance(spec, dict) or not all(isinstance(v, dict) for v in spec.values()):
        raise SweepError(f"{where}: profiles must map a profile name to parameters, e.g. {{tiny: {{n_tokens: 200}}}}")
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise SweepError(f"{where}: profiles names unknown profile(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return {name: dict(values) for name, values in spec.items()}


def load_sweep(path: str | Path, *, profile: str | None = None,
               overrides: dict[str, Any] | None = None, force: bool = False) -> Sweep:
    """Parse and fully validate a sweep file; nothing runs."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {path} does not exist")
    try:
        spec = load_yaml(path.read_text(encoding="utf-8"), f"sweep file {path}") or {}
    except ParamsError as exc:
        raise SweepError(str(exc)) from None
    if not isinstance(spec, dict):
        raise SweepError(f"sweep file {path} must hold a mapping")
    unknown = set(spec) - SWEEP_KEYS
    if unknown:
        raise SweepError(f"unknown key(s) {sorted(unknown)} in {path}; known: {sorted(SWEEP_KEYS)}")
    if not spec.get("steps"):
        raise SweepError(f"sweep file {path} has no steps")
    made_for = spec.get("profile")
    profile = profile or made_for
    table = str(spec.get("table", f"{path.stem}.csv"))
    if Path(table).is_absolute() or ".." in Path(table).parts or not table.endswith(".csv"):
        raise SweepError(f"{path}: table {table!r} must be a .csv file name inside the results' tables/ "
                         "(no absolute path, no '..')")
    planned: list[PlannedRun] = []
    places: list[str] = []  # the step of each planned run, for messages
    step_runs: dict[str, list[PlannedRun]] = {}
    for i, step in enumerate(spec["steps"]):
        where = f"{path} step {i + 1}"
        if not isinstance(step, dict) or "notebook" not in step:
            raise SweepError(f"{where} must be a mapping with a 'notebook' key")
        unknown = set(step) - STEP_KEYS
        if unknown:
            raise SweepError(f"unknown key(s) {sorted(unknown)} in {where}; known: {sorted(STEP_KEYS)}")
        stage = stages.stage_of(step["notebook"])
        step_id = step.get("id")
        if step_id is not None and (not isinstance(step_id, str) or not REFERENCE.match("@" + step_id)):
            raise SweepError(f"{where}: id must be a word (letters, digits, - _ .), got {step_id!r}")
        if step_id in step_runs:
            raise SweepError(f"{where}: id {step_id!r} is used twice")
        label = step.get("label", "")
        if not isinstance(label, str):
            raise SweepError(f"{where}: label must be a string, got {label!r}")
        by_profile = _profile_params(step.get("profiles"), where)
        grid = step.get("grid") or {}
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise SweepError(f"{where}: grid values for {key!r} must be a non-empty list")
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            varying = dict(zip(keys, combo))
            values = (dict(step.get("params") or {}) | by_profile.get(profile, {}) | varying
                      | _applicable(stage, overrides))
            values = {k: _dereference(v, step_runs, where) for k, v in values.items()}
            try:
                resolved = stages.resolve(stage, profile=profile, overrides=values)
            except ParamsError as exc:
                raise SweepError(f"{where}: {exc}") from exc
            run = PlannedRun(stage, resolved, varying, bool(step.get("collect", False)), label)
            run.run_dir = runs.run_path(stage, resolved)
            places.append(where)
            planned.append(run)
            if step_id is not None:
                step_runs.setdefault(step_id, []).append(run)
        if step_id is not None:
            step_runs.setdefault(step_id, [])
    for i, (run, where) in enumerate(zip(planned, places)):  # the file is well formed; now its inputs
        _preflight(run, planned[:i], where, force)
    from lib.stages.figures import FIGURES

    unknown = [f for f in spec.get("figures") or [] if f not in FIGURES]
    if unknown:
        raise SweepError(f"{path}: unknown figure(s) {', '.join(unknown)}; known: {', '.join(sorted(FIGURES))}")
    return Sweep(name=str(spec.get("name", path.stem)), table=table, figures=list(spec.get("figures") or []),
                 runs=planned, profile=profile, made_for=made_for, overrides=dict(overrides or {}))


def _preflight(run: PlannedRun, earlier: list[PlannedRun], where: str, force: bool) -> None:
    """Models, corpora and hardware of one run, given what the earlier steps will have made,
    then the stage's own checks (``check(params)`` in its module, where it has one)."""
    from lib import preflight
    from lib.corpus import CorpusError
    from lib.models import ModelSpecError
    from lib.vocab import VocabError

    corpora = {(r.params.language, r.params.corpus_tag) for r in earlier if r.stage == preflight.CORPUS_BUILDER}
    try:
        preflight.check(run.stage, run.params, planned_runs={str(r.run_dir) for r in earlier},
                        planned_corpora=corpora)
        stage_check = getattr(stages.STAGES[run.stage], "check", None)
        if stage_check is not None and not (force or runs.is_complete(run.run_dir)):
            stage_check(run.params)
    except (ParamsError, ModelSpecError, CorpusError, VocabError) as exc:
        raise SweepError(f"{where}: {exc}") from None


def _dereference(value: Any, step_runs: dict[str, list[PlannedRun]], where: str) -> Any:
    """``@id`` (alone or inside a list) -> the run directory of the earlier step ``id``."""
    if isinstance(value, list):
        return [_dereference(v, step_runs, where) for v in value]
    if not isinstance(value, str) or not value.startswith("@"):
        return value
    match = REFERENCE.match(value)
    if not match or match.group(1) not in step_runs:
        known = ", ".join(sorted(step_runs)) or "none"
        raise SweepError(f"{where}: {value!r} names no earlier step (ids so far: {known})")
    targets = step_runs[match.group(1)]
    if len(targets) != 1:
        raise SweepError(f"{where}: {value!r} names a step with {len(targets)} runs; a reference needs "
                         "exactly one (give the grid its own step per value)")
    return str(targets[0].run_dir)


def _applicable(stage: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Command-line overrides apply to every step whose notebook has that parameter."""
    if not overrides:
        return {}
    names = field_names(stages.params_class(stage))
    return {k: v for k, v in overrides.items() if k in names}


def run_sweep(path: str | Path, *, profile: str | None = None, results_dir: Path | None = None,
              overrides: dict[str, Any] | None = None, force: bool = False,
              launch: Launch | None = None, log=print) -> pd.DataFrame:
    """Run every planned run (skipping complete ones), then write the table and figures.

    ``launch`` (lib.launchers; None = one run after another, in this process): runs that do not
    need each other's output run at once, in worker processes or submitit jobs; a failed run's
    dependents do not start, the others finish, then the failure is raised.

    Where they go: ``results_dir`` when given; else the committed ``results/`` when the
    sweep runs as its table was made (the file's own profile, no overrides); else a
    directory of this sweep under the runs area, so a tiny or changed sweep never
    replaces committed results. The table is written once, after every run it collects
    has completed; an interrupted or failed sweep writes its partial table beside the
    runs and says where.
    """
    sweep = load_sweep(path, profile=profile, overrides=overrides, force=force)
    _check_overrides_used(sweep, overrides)
    results_dir = Path(results_dir) if results_dir else (RESULTS_DIR if sweep.as_committed else scratch_dir(sweep))
    if results_dir != RESULTS_DIR and not sweep.as_committed:
        log(f"profile {sweep.profile or 'none'} / overrides {sweep.overrides or 'none'}: this sweep's table and "
            f"figures go to {results_dir} (the committed results/ were made with profile "
            f"{sweep.made_for or 'none'} and no overrides)")
    table_path = results_dir / "tables" / sweep.table
    try:
        if launch is None:
            _run_serial(sweep, path, force, log)
        else:
            _run_parallel(sweep, path, launch, force, log)
    except BaseException:
        partial = scratch_dir(sweep) / "partial" / sweep.table
        write_table(collect_costs(sweep), cost_table_path(partial))
        if write_table(collect_rows(sweep), partial):
            log(f"the sweep stopped; the rows of its finished runs are in {partial} (rerun the same command "
                "to resume; finished runs are skipped)")
        raise
    table = collect_rows(sweep)
    write_table(table, table_path)
    log(f"table: {table_path}")
    if write_table(collect_costs(sweep), cost_table_path(table_path)):
        log(f"cost of its runs: {cost_table_path(table_path)}")
    if sweep.figures:
        from lib.stages import figures

        for name in sweep.figures:
            log(f"figure {name}: {figures.make(name, results_dir)}")
    return table


def _run_serial(sweep: Sweep, path: str | Path, force: bool, log) -> None:
    for i, run in enumerate(sweep.runs, 1):
        label = f"[{i}/{len(sweep.runs)}] {run.stage} {run.varying or ''}"
        if runs.is_complete(run.run_dir) and not force:
            log(f"{label}: complete, skipped ({run.run_dir.name})")
            continue
        log(f"{label}: running in {run.run_dir}")
        runs.execute(run.stage, run.params, force=force, log=log,
                     provenance={"sweep": str(path), "profile": sweep.profile})
        log(f"{label}: done in {runs.load_record(run.run_dir)['wall_seconds']} s")


def _run_parallel(sweep: Sweep, path: str | Path, launch: Launch, force: bool, log) -> None:
    """The planned runs through lib.scheduling: each starts once the runs it needs are complete."""
    from lib import launchers, scheduling

    log = scheduling.serialized(log)  # workers' lines arrive from several threads
    slots = launch.slots_for(len(sweep.runs))
    where = f"{len(slots)} device(s) {', '.join(map(str, slots))}" if slots[0] is not None else \
        f"up to {len(slots)} at once"
    log(f"runs through {launch.launcher}, {where}; each waits for the runs whose output it reads")
    todo = [run for run in sweep.runs if force or not runs.is_complete(run.run_dir)]
    scheduling.prepare_shared(todo, log)
    launcher = launchers.open_launcher(launch, scratch_dir(sweep) / "jobs", log)
    scheduling.run_all(sweep.runs, launcher, slots=slots, force=force, log=log,
                       provenance={"sweep": str(path), "profile": sweep.profile, "launcher": launch.launcher})


def scratch_dir(sweep: Sweep) -> Path:
    """The runs-area directory of one sweep setting (name, profile, overrides)."""
    import hashlib
    import json

    key = json.dumps({"profile": sweep.profile, "overrides": sweep.overrides}, sort_keys=True, default=str)
    return runs_dir() / "sweeps" / f"{sweep.name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def _check_overrides_used(sweep: Sweep, overrides: dict[str, Any] | None) -> None:
    used = set()
    for run in sweep.runs:
        used |= field_names(stages.params_class(run.stage))
    unknown = set(overrides or {}) - used
    if unknown:
        raise SweepError(f"override(s) {sorted(unknown)} match no parameter of any step")


def collect_rows(sweep: Sweep) -> pd.DataFrame:
    """The tidy rows of every complete collected run, with run id and varying params."""
    rows = []
    for run in sweep.runs:
        if not run.collect or not runs.is_complete(run.run_dir):
            continue
        for row in runs.load_metrics(run.run_dir)["rows"]:
            named = {"label": run.label} if run.label else {}
            row = {k: _portable(v) for k, v in row.items()}
            rows.append({**{k: v for k, v in run.varying.items() if k not in row},
                         **row, **named, "run_id": run.run_dir.name})
    return tidy(pd.DataFrame(rows))


def cost_table_path(table_path: Path) -> Path:
    """Where a sweep's cost table goes: beside its table (``lapt.csv`` -> ``lapt_cost.csv``)."""
    return table_path.with_name(f"{table_path.stem}_cost{table_path.suffix}")


def collect_costs(sweep: Sweep) -> pd.DataFrame:
    """One row per complete run of the sweep (a run two steps share, once): its run id, stage,
    label and varying params, and its cost (lib.cost.flat). Committed beside the table, so a
    reader of ``results/`` (``reproduce --tables-only``) sees what the grid cost without the runs;
    a rerun that skips every run writes the same bytes, since the records do not change."""
    from lib.cost import flat

    rows, seen = [], set()
    for run in sweep.runs:
        if run.run_dir in seen or not runs.is_complete(run.run_dir):
            continue
        seen.add(run.run_dir)
        varying = {k: _portable(v) for k, v in run.varying.items()}
        rows.append({"run_id": run.run_dir.name, "stage": run.stage, "label": run.label or "",
                     "params": " ".join(f"{k}={v}" for k, v in sorted(varying.items())), **flat(run.run_dir)})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).sort_values("run_id", kind="mergesort").reset_index(drop=True)


def _portable(value: Any) -> Any:
    """A run directory named in a row (a model trained by an earlier step) as its run id: tables
    name no machine's paths, so the same runs elsewhere write the same bytes."""
    if isinstance(value, str) and value.startswith("/"):
        path = Path(value)
        if path.is_relative_to(runs_dir()) and path.parent.parent == runs_dir():
            return path.name
    return value


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable column order and row order, so a rerun writes a byte-identical table."""
    if frame.empty:
        return frame
    lead = [c for c in LEADING_COLUMNS if c in frame.columns]
    rest = sorted(c for c in frame.columns if c not in lead)
    frame = frame[lead + rest]
    keys = [c for c in lead + rest if c != "value"]
    return frame.sort_values(keys, kind="mergesort").reset_index(drop=True)


def write_table(frame: pd.DataFrame, path: Path) -> bool:
    if frame.empty:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")
    tmp.replace(path)
    return True
