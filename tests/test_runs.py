"""Run directories through papermill, on the figures notebook (no model needed)."""

from __future__ import annotations

import json

import nbformat
import pytest

from lib import params as P
from lib import runs, stages
from lib.stages.baseline_eval import BaselineEvalParams
from lib.stages.figures import FiguresParams
from tests.test_figures import write_baseline_table


def test_run_id_is_stable_and_sensitive_to_parameters():
    a = P.build(BaselineEvalParams, {})
    b = P.build(BaselineEvalParams, {"max_chars": 10})
    assert runs.run_id("02_baseline_eval", a) == runs.run_id("02_baseline_eval", P.build(BaselineEvalParams, {}))
    assert runs.run_id("02_baseline_eval", a) != runs.run_id("02_baseline_eval", b)
    # where the run lives is not part of what it computes
    c = P.build(BaselineEvalParams, {"run_dir": "/elsewhere"})
    assert runs.run_id("02_baseline_eval", a) == runs.run_id("02_baseline_eval", c)


def test_save_metrics_requires_tidy_rows(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        runs.save_metrics(tmp_path, [{"metric": "x"}])


@pytest.mark.slow
def test_execute_records_everything_and_skips_a_finished_twin(isolated_home, tmp_path):
    write_baseline_table(tmp_path)
    params = P.build(FiguresParams, {"results_dir": str(tmp_path)})
    run_dir = runs.execute("90_figures", params)
    assert run_dir.parent.parent == isolated_home / "runs"
    record = runs.load_record(run_dir)
    assert record["status"] == "complete"
    assert record["wall_seconds"] > 0
    assert record["packages"]["torch"].startswith("2.13.0")
    assert {"git_commit", "device", "python"} <= set(record)
    assert runs.load_metrics(run_dir)["rows"] == [{"metric": "figures_made", "value": 1}]
    assert (tmp_path / "figures" / "baseline_bpc.png").is_file()
    executed = nbformat.read(run_dir / "90_figures.ipynb", as_version=4)
    assert executed.metadata.papermill.parameters["results_dir"] == str(tmp_path)
    assert (run_dir / "params.yaml").read_text().startswith("figures:")

    stamp = (run_dir / "run.json").stat().st_mtime_ns
    assert runs.execute("90_figures", params) == run_dir
    assert (run_dir / "run.json").stat().st_mtime_ns == stamp  # skipped, not rerun


@pytest.mark.slow
def test_a_failing_notebook_is_recorded_as_failed(isolated_home, tmp_path):
    params = P.build(FiguresParams, {"results_dir": str(tmp_path), "figures": ["baseline_bpc"]})
    with pytest.raises(runs.RunError, match="90_figures failed"):
        runs.execute("90_figures", params)
    run_dir = runs.run_path("90_figures", params)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not runs.is_complete(run_dir)


def test_a_run_under_way_in_another_process_is_not_started_again(tmp_path):
    import json
    import platform
    import subprocess
    import sys

    params = stages.resolve("02_baseline_eval", overrides={"models": ["tiny-random"]})
    run_dir = runs.run_path("02_baseline_eval", params, tmp_path)
    run_dir.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run_dir / runs.RUN_FILE).write_text(json.dumps(
            {"status": "running", "pid": other.pid, "host": platform.node()}))
        (run_dir / runs.LOCK_FILE).write_text(f"{other.pid} {platform.node()}")
        with pytest.raises(runs.RunError, match="already running"):
            runs.execute("02_baseline_eval", params, root=tmp_path)
        assert (run_dir / runs.RUN_FILE).is_file()  # nothing of the other run was deleted
        assert sorted(p.name for p in run_dir.iterdir()) == sorted([runs.RUN_FILE, runs.LOCK_FILE])
    finally:
        other.kill()
        other.wait()


def test_the_lock_is_claimed_with_its_owner_written_and_a_dead_owners_lock_is_taken_over(tmp_path):
    import os
    import platform

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / runs.LOCK_FILE).write_text(f"{2**22 + 12345} {platform.node()}")  # no such process
    with runs._claimed(run_dir):
        assert (run_dir / runs.LOCK_FILE).read_text() == f"{os.getpid()} {platform.node()}"
        assert [p.name for p in run_dir.iterdir()] == [runs.LOCK_FILE]
    assert list(run_dir.iterdir()) == []


def test_an_option_added_later_keeps_finished_run_ids_while_at_its_default():
    from dataclasses import dataclass

    @dataclass
    class Before:
        lr: float = 1e-3

    @dataclass
    class After:
        lr: float = 1e-3
        budget: int = 0

        ADDED_LATER = ("budget",)

    assert runs.run_id("s", After()) == runs.run_id("s", Before())
    assert runs.run_id("s", After(budget=5)) != runs.run_id("s", Before())
    assert runs.run_id("s", After(lr=2e-3)) != runs.run_id("s", After())
