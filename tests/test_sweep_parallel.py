"""Parallel sweeps: which runs wait for which (lib.scheduling), launch options that fail in one
line, and through the command line: independent runs at once in worker processes and in
submitit's local executor (the same table bytes as a serial sweep), submitit's debug executor, a
run after the run it reads, a failure that stops only its dependents, and Ctrl-C.

The command-line tests run `python -m lib sweep` in a subprocess with the tiny profile and their
own LANGADAPT_HOME, as tests/test_cli_safety.py does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from test_cli_safety import cli, new_home, one_line_error, start, wait_for, write

from lib import launchers, scheduling
from lib.paths import PARAMS_DIR
from lib.scheduling import Outcome, dependencies
from lib.staging import alive
from lib.sweep import load_sweep

# ---------------------------------------------------------------- the dependency graph


def _index(sweep, stage: str, **attrs) -> int:
    found = [i for i, r in enumerate(sweep.runs)
             if r.stage == stage and all(getattr(r.params, k) == v for k, v in attrs.items())]
    assert len(found) == 1, (stage, attrs, found)
    return found[0]


def test_llamaturk_chain_waits_for_its_references_and_corpora(isolated_home):
    sweep = load_sweep(PARAMS_DIR / "sweeps" / "llamaturk_tr.yaml")
    needs = dependencies(sweep.runs)
    tr, en = _index(sweep, "01_prepare_data", language="tr"), _index(sweep, "01_prepare_data", language="en")
    c = _index(sweep, "03_lapt")
    ci = _index(sweep, "05_instruction_tuning")
    base, t, cit = (_index(sweep, "06_task_tuning", chain=chain) for chain in ("base", "t", "c-i-t"))
    assert needs[tr] == set()
    assert needs[en] == {tr}  # corpus builds share the download cache: one after another
    assert needs[c] == {tr, en}
    assert needs[ci] == {tr, en, c}  # model: "@c"
    assert needs[base] == needs[t] == {tr, en}  # independent of the chain: they run beside it
    assert needs[cit] == {tr, en, ci}


def test_lep_chain_waits_for_donors_instruct_model_and_shared_builds(isolated_home):
    sweep = load_sweep(PARAMS_DIR / "sweeps" / "lep_chain_ru.yaml")
    needs = dependencies(sweep.runs)
    corpora = {_index(sweep, "01_prepare_data", language=lang) for lang in ("ru", "en")}
    vocab = {s: _index(sweep, "04_vocab_adapt", strategy=s) for s in ("bpe", "extension")}
    donors = {s: _index(sweep, "03_lapt", model=str(sweep.runs[vocab[s]].run_dir)) for s in vocab}
    instruct = _index(sweep, "05_instruction_tuning")
    assert all(needs[vocab[s]] == corpora for s in vocab)
    assert all(needs[donors[s]] == corpora | {vocab[s]} for s in vocab)
    assert needs[instruct] == corpora  # T trains beside the donors
    lep = [i for i, r in enumerate(sweep.runs) if r.stage == "07_lep_propagate"]
    for i in lep:
        donor = next(s for s in donors if sweep.runs[i].params.donor == str(sweep.runs[donors[s]].run_dir))
        assert {instruct, donors[donor]} | corpora <= needs[i]
    calibrated = [i for i in lep if sweep.runs[i].params.calibrate]
    assert len(calibrated) == 2 and calibrated[0] in needs[calibrated[1]]  # one calibration set, built once
    uncalibrated = [i for i in lep if not sweep.runs[i].params.calibrate]
    assert not any(set(lep) & needs[i] for i in uncalibrated)  # those propagate at once
    for i, run in enumerate(sweep.runs):
        if run.stage in ("02_baseline_eval", "08_evaluate"):
            assert set(lep) <= needs[i]  # references inside the models list


def test_references_in_lists_languages_and_twins(isolated_home, tmp_path):
    sweep = load_sweep(write(tmp_path, "graph.yaml", """
steps:
  - notebook: 01_prepare_data
    grid: {language: [pl, tr]}
  - {id: a, notebook: 03_lapt, params: {language: pl, english_max_chars: 0}}
  - {notebook: 02_baseline_eval, params: {language: tr, models: [tiny-random, "@a"]}}
  - {notebook: 02_baseline_eval, params: {language: pl}}
  - {notebook: 02_baseline_eval, params: {language: pl}}
"""), profile="tiny")
    assert dependencies(sweep.runs) == [set(), {0}, {0}, {1, 2}, {0}, {0, 4}]  # the twin waits for its first


# ---------------------------------------------------------------- the loop, with a launcher that only pretends


@dataclass
class _Params:
    model: str = ""


@dataclass
class _Run:
    stage: str
    params: _Params
    run_dir: Path
    varying: dict = field(default_factory=dict)


class _Pretend:
    """Completes a run (its run.json and metrics.json) on the second look, or fails the ones named."""

    def __init__(self, failing: set[str]):
        self.failing, self.started, self.running, self.most = failing, [], set(), 0

    def start(self, job, *, prefix, device):
        self.started.append(job.params.model or prefix)
        self.running.add(prefix)
        self.most = max(self.most, len(self.running))
        return {"prefix": prefix, "job": job, "looks": 0}

    def poll(self, handle):
        handle["looks"] += 1
        if handle["looks"] < 2:
            return None
        self.running.discard(handle["prefix"])
        run_dir = Path(handle["job"].provenance["dirs"][handle["prefix"]])
        if run_dir.name in self.failing:
            return Outcome(False, f"{run_dir.name} broke")
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text('{"rows": []}')
        (run_dir / "run.json").write_text('{"status": "complete", "wall_seconds": 1}')
        return Outcome(True)

    def stop(self, handles):
        raise AssertionError("nothing to stop")


def test_a_failure_stops_its_dependents_only_and_slots_cap_the_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(scheduling, "POLL_S", 0.01)
    a, b, c, d, e = (tmp_path / name for name in "abcde")
    planned = [_Run("x", _Params(), a), _Run("x", _Params(str(a)), b), _Run("x", _Params(str(b)), c),
               _Run("x", _Params(), d), _Run("x", _Params(), e)]
    dirs = {f"[{i + 1}/5 x]": str(r.run_dir) for i, r in enumerate(planned)}
    launcher, lines = _Pretend({"a"}), []
    with pytest.raises(scheduling.SweepRunsFailed) as failure:
        scheduling.run_all(planned, launcher, slots=[None, None], force=False, provenance={"dirs": dirs},
                           log=lines.append)
    assert str(failure.value) == ("1 run(s) failed: [1/5] x (a broke); not started, as they need a failed run: "
                                  "[2/5] x, [3/5] x; 2 other run(s) complete")
    assert launcher.most == 2 and len(launcher.started) == 3  # a, d, e; never b or c (c needs b)
    assert (d / "run.json").is_file() and (e / "run.json").is_file() and not b.exists()


def test_a_lock_left_by_an_ended_job_is_released_and_no_other(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"pid": 4242, "host": "node7", "provenance": {"launch_id": "j1"}}))
    lock = run_dir / ".lock"
    lock.write_text("4242 node7")
    assert not scheduling.release_lock(run_dir, "j2") and lock.exists()  # another job's record
    lock.write_text("999 node8")
    assert not scheduling.release_lock(run_dir, "j1") and lock.exists()  # another process holds it now
    lock.write_text("4242 node7")
    assert scheduling.release_lock(run_dir, "j1") and not lock.exists()


# ---------------------------------------------------------------- launch options: one line, at once


def _launch_error(capsys, *args: str) -> str:
    from lib.__main__ import main

    assert main(["sweep", "params/sweeps/baseline.yaml", *args]) == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(("args", "needle"), [
    (["--workers", "0"], "--workers must be 1 or more"),
    (["--slurm-partition", "gpu"], "--slurm-partition needs --launcher slurm"),
    (["--timeout-min", "30"], "--timeout-min needs --launcher slurm or --launcher local"),
    (["--launcher", "debug", "--workers", "2"], "--launcher debug runs one job at a time"),
    (["--launcher", "slurm", "--devices", "0"], "SLURM gives each job its GPUs"),
])
def test_launch_options_that_cannot_work_fail_in_one_line(capsys, args, needle):
    line = _launch_error(capsys, *args)
    assert line.startswith("error: ") and needle in line


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="this machine has SLURM")
def test_slurm_without_a_cluster_fails_in_one_line(capsys):
    assert "sbatch and srun not found" in _launch_error(capsys, "--launcher", "slurm", "--timeout-min", "60")


def test_devices_without_a_gpu_fail_in_one_line(capsys):
    if launchers.visible_devices():
        pytest.skip("this machine has a GPU")
    assert "this machine has no CUDA GPU" in _launch_error(capsys, "--devices", "0,1")


def test_slurm_options_become_the_job_script(tmp_path):
    from submitit.slurm.slurm import _make_sbatch_string

    parser = argparse.ArgumentParser()
    launchers.add_arguments(parser)
    args = parser.parse_args(["--launcher", "slurm", "--timeout-min", "240", "--slurm-partition", "gpu",
                              "--slurm-gpus", "1", "--slurm-cpus", "8", "--slurm-mem-gb", "32",
                              "--slurm-account", "lab", "--slurm-setup", "source .venv/bin/activate"])
    script = _make_sbatch_string(command="python -m x", folder=tmp_path, **launchers.slurm_parameters(args))
    for line in ("#SBATCH --time=240", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB", "#SBATCH --account=lab",
                 "source .venv/bin/activate"):
        assert line in script.splitlines(), line


# ---------------------------------------------------------------- through the command line


TWO = "name: two\nsteps:\n  - notebook: 02_baseline_eval\n    grid: {max_chars: [2000, 2400]}\n    collect: true\n"
LAPT = "{max_steps: 2, save_steps: 2, eval_steps: 0, test_max_chars: 500, english_max_chars: 0}"


@pytest.fixture(scope="module")
def corpora(shared_cache, tmp_path_factory) -> Path:
    """The tiny pl and en corpora, built once through the command line and linked into each home."""
    home = new_home(tmp_path_factory.mktemp("corpora"), shared_cache)
    for language in ("pl", "en"):
        done = cli(home, "prepare", "--language", language, "--profile", "tiny")
        assert done.returncode == 0, done.stderr[-3000:]
    return home / "corpora"


@pytest.fixture(scope="module")
def serial_table(corpora, shared_cache, tmp_path_factory) -> bytes:
    """The table of the two-run sweep run serially, as the parallel ones must write it."""
    root = tmp_path_factory.mktemp("serial")
    home = new_home(root, shared_cache, corpora)
    done = cli(home, "sweep", write(root, "two.yaml", TWO), "--profile", "tiny", "--results-dir", str(root / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    return (root / "out" / "tables" / "two.csv").read_bytes()


def _records(home: Path, stage: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((home / "runs" / stage).glob("*/run.json"))]


def _span(record: dict) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(record["started"]), datetime.fromisoformat(record["finished"])


@pytest.mark.slow
@pytest.mark.parametrize("how", [["--workers", "2"], ["--launcher", "local", "--workers", "2"]],
                         ids=["workers", "submitit-local"])
def test_independent_runs_run_at_once_and_write_the_serial_table(corpora, shared_cache, serial_table, tmp_path,
                                                                 how):
    home = new_home(tmp_path, shared_cache, corpora)
    done = cli(home, "sweep", write(tmp_path, "two.yaml", TWO), "--profile", "tiny",
               "--results-dir", str(tmp_path / "out"), *how)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (first_start, first_end), (second_start, second_end) = map(_span, _records(home, "02_baseline_eval"))
    assert max(first_start, second_start) < min(first_end, second_end)  # their intervals overlap
    assert (tmp_path / "out" / "tables" / "two.csv").read_bytes() == serial_table
    prefixes = [line.split("]", 1)[0] + "]" for line in done.stdout.splitlines() if " 02_baseline_eval] " in line]
    assert {"[1/2 02_baseline_eval]", "[2/2 02_baseline_eval]"} <= set(prefixes)  # each worker's lines


@pytest.mark.slow
def test_a_run_waits_for_the_run_it_reads_and_a_failure_stops_only_its_dependents(corpora, shared_cache, tmp_path,
                                                                                    monkeypatch):
    home = new_home(tmp_path, shared_cache, corpora)
    sweep = write(tmp_path, "chain.yaml", f"""
name: chain
steps:
  - {{id: c, notebook: 03_lapt, params: {LAPT}}}
  - {{notebook: 02_baseline_eval, params: {{models: ["@c"], max_chars: 2000}}, collect: true}}
  - {{id: bad, notebook: 03_lapt, params: {{block_size: 100000}}}}
  - {{notebook: 02_baseline_eval, params: {{models: ["@bad"], max_chars: 2000}}, collect: true}}
  - {{notebook: 02_baseline_eval, params: {{max_chars: 2400}}, collect: true}}
""")
    done = cli(home, "sweep", sweep, "--profile", "tiny", "--workers", "2", "--results-dir", str(tmp_path / "out"))
    one_line_error(done, "1 run(s) failed: [3/5] 03_lapt (03_lapt failed: ModelSpecError: block_size")
    assert "not started, as they need a failed run: [4/5] 02_baseline_eval; 3 other run(s) complete" in done.stderr
    assert "[3/5 03_lapt] error: 03_lapt failed: ModelSpecError" in done.stdout  # the worker's line, prefixed
    monkeypatch.setenv("LANGADAPT_HOME", str(home))  # the plan's run directories (a reference's id holds its path)
    c, after_c, bad, after_bad, independent = load_sweep(sweep, profile="tiny").runs
    record = {name: json.loads((r.run_dir / "run.json").read_text())
              for name, r in (("c", c), ("after_c", after_c), ("bad", bad), ("independent", independent))}
    assert _span(record["after_c"])[0] >= _span(record["c"])[1]  # started after c finished
    assert record["bad"]["status"] == "failed" and record["independent"]["status"] == "complete"
    assert not after_bad.run_dir.exists()
    partial = next((home / "runs" / "sweeps").glob("chain-*/partial/chain.csv")).read_text()
    assert after_c.run_dir.name in partial and independent.run_dir.name in partial
    assert not (tmp_path / "out" / "tables" / "chain.csv").exists()


@pytest.mark.slow
def test_submitit_debug_runs_the_job_in_this_process(corpora, shared_cache, tmp_path):
    home = new_home(tmp_path, shared_cache, corpora)
    sweep = write(tmp_path, "one.yaml", "name: one\nsteps:\n  - notebook: 02_baseline_eval\n    collect: true\n")
    done = cli(home, "sweep", sweep, "--profile", "tiny", "--launcher", "debug", "--results-dir", str(tmp_path / "out"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "runs through debug" in done.stdout
    (record,) = _records(home, "02_baseline_eval")
    assert record["status"] == "complete" and record["provenance"]["launcher"] == "debug"
    assert (tmp_path / "out" / "tables" / "one.csv").is_file()


@pytest.mark.slow
def test_ctrl_c_interrupts_every_worker_and_says_how_to_resume(corpora, shared_cache, tmp_path):
    home = new_home(tmp_path, shared_cache, corpora)
    sweep = write(tmp_path, "long.yaml", "name: long\nsteps:\n  - notebook: 03_lapt\n"
                  "    grid: {learning_rate: [0.01, 0.02]}\n    params: {max_steps: 400, eval_steps: 0}\n")
    process = start(home, "sweep", sweep, "--profile", "tiny", "--workers", "2")
    runs_of = home / "runs" / "03_lapt"
    try:
        wait_for(lambda: len({c.parent.parent for c in runs_of.glob("*/checkpoints/checkpoint-*")}) == 2
                 or process.poll() is not None,
                 400, "both runs to train")
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the foreground group
    code = process.wait(timeout=400)
    err = process.stderr.read()
    assert code == 130 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("interrupted: ") and "resume" in err
    records = _records(home, "03_lapt")
    assert [r["status"] for r in records] == ["interrupted", "interrupted"]
    assert not list(runs_of.glob("*/.lock"))
    assert not any(alive(r["pid"]) for r in records)  # no worker outlives the sweep
