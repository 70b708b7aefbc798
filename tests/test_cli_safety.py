"""What a user meets at the command line: bad input fails at once in one line, a killed run
resumes, two starts of one run do not share it, Ctrl-C leaves nothing that looks complete,
and a tiny or interrupted sweep never touches the committed results/.

Everything runs `python -m lib ...` in a subprocess with the tiny profile and its own
LANGADAPT_HOME (downloads and converted models linked from the shared cache).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib.paths import PROJ_ROOT, RESULTS_DIR


def cli(home: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib", *args], cwd=PROJ_ROOT, capture_output=True, text=True,
                          timeout=timeout, env=os.environ | {"LANGADAPT_HOME": str(home)})


def start(home: Path, *args: str) -> subprocess.Popen:
    """In its own process group, so the whole tree (papermill's kernel too) can be signalled, and
    with Ctrl-C's default action: a suite started in the background of a script (`make test &`)
    inherits SIGINT ignored, and a terminal's foreground command never does."""
    return subprocess.Popen([sys.executable, "-m", "lib", *args], cwd=PROJ_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            env=os.environ | {"LANGADAPT_HOME": str(home)})


def new_home(tmp_path: Path, shared: Path, corpora: Path | None = None) -> Path:
    home = tmp_path / f"home{len(list(tmp_path.glob('home*')))}"
    home.mkdir()
    for name in ("downloads", "models"):
        (home / name).symlink_to(shared / name, target_is_directory=True)
    if corpora is not None:
        (home / "corpora").symlink_to(corpora, target_is_directory=True)
    return home


def one_line_error(done: subprocess.CompletedProcess, needle: str) -> None:
    assert done.returncode != 0, done.stdout[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and needle in last, done.stderr[-2000:]


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def results_snapshot() -> dict[str, bytes]:
    return {str(p.relative_to(RESULTS_DIR)): p.read_bytes() for p in sorted(RESULTS_DIR.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def home(shared_cache, tmp_path_factory) -> Path:
    """A home with the tiny pl and en corpora built through the command line."""
    root = tmp_path_factory.mktemp("cli")
    home = new_home(root, shared_cache)
    for language in ("pl", "en"):
        done = cli(home, "prepare", "--language", language, "--profile", "tiny")
        assert done.returncode == 0, done.stderr[-3000:]
    return home


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------- bad input: one line, before any model loads


BAD_RUNS = [
    (["run", "03_lapt", "-p", "lenguage=pl"], "unknown parameter(s) lenguage"),
    (["run", "03_lapt", "-p", "models=[tiny-random"], "is not valid YAML"),
    (["run", "03_lapt", "-p", "=3"], "names no parameter"),
    (["run", "03_lapt", "-p", "learning_rate=fast"], "'learning_rate' must be float"),
    (["run", "99_nothing"], "unknown notebook"),
    (["run", "07_lep_propagate", "--profile", "tiny", "-p", "instruct=tiny-random", "-p", "donor=nowhere/at-all"],
     "hub cannot be reached"),
    (["run", "03_lapt", "--profile", "tiny", "-p", "model=mistral-7b-v0.1"], "is a tokenizer-only entry"),
    (["run", "04_vocab_adapt", "--profile", "tiny", "-p", "strategy=bpe", "-p", "n_tokens=5"], "n_tokens cannot"),
    (["run", "03_lapt", "--profile", "huge"], "unknown profile 'huge'"),
    (["run", "03_lapt", "--profile", "tiny", "-p", "mode=qlora"], "needs a CUDA GPU"),
    (["run", "03_lapt", "--profile", "tiny", "-p", "device=cuda"], "needs a CUDA GPU"),
    (["run", "03_lapt", "--profile", "tiny", "-p", "model=/no/such/checkpoint"], "unknown model"),
    (["run", "03_lapt", "--profile", "tiny", "-p", "model=someorg/somemodel"], "hub cannot be reached"),
    (["run", "03_lapt", "--profile", "tiny", "-p", "corpus_tag=unbuilt", "-p", "learning_rate=1e-3"],
     "the pl/unbuilt corpus is not built; build it first: python -m lib prepare --language pl"),
    (["run", "03_lapt", "--profile", "tiny", "-p", "mode=full", "-p", "lora_r=8"], "lora_r cannot change"),
    (["run", "06_task_tuning", "--profile", "tiny", "-p", "route=classifier", "-p", "shots=[0]"],
     "shots cannot change what runs for route 'classifier'"),
    (["run", "06_task_tuning", "--profile", "tiny", "-p", "route=none", "-p", "learning_rate=0.1"],
     "learning_rate cannot change what runs for route 'none'"),
    (["sweep", "no/such/sweep.yaml"], "does not exist"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_RUNS, ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_bad_input_is_one_line_within_seconds(home, args, needle):
    started = time.monotonic()
    one_line_error(cli(home, *args), needle)
    assert time.monotonic() - started < 60
    assert not list((home / "runs").glob("*/*/run.json"))  # nothing started


def test_bad_files_are_named(home, tmp_path):
    bad = write(tmp_path, "bad.yaml", "learning_rate: [0.1\n")
    one_line_error(cli(home, "run", "03_lapt", "--params", bad), f"parameter file {bad} is not valid YAML (line 2")
    one_line_error(cli(home, "sweep", bad), f"sweep file {bad} is not valid YAML")
    escape = write(tmp_path, "escape.yaml", "table: ../../x.csv\nsteps:\n  - notebook: 01_prepare_data\n")
    one_line_error(cli(home, "sweep", escape), "no '..'")


def test_a_misspelled_model_in_the_last_step_fails_before_the_first_run(home, tmp_path):
    sweep = write(tmp_path, "typo.yaml", """
steps:
  - notebook: 02_baseline_eval
    params: {models: [tiny-random]}
  - notebook: 02_baseline_eval
    params: {models: [tiny-randon]}
    collect: true
""")
    one_line_error(cli(home, "sweep", sweep, "--profile", "tiny"), "step 2: unknown model 'tiny-randon'")
    assert not list((home / "runs").glob("02_baseline_eval/*/run.json"))


# ---------------------------------------------------------------- sweeps never overwrite committed results


@pytest.mark.slow
def test_a_tiny_sweep_leaves_the_committed_results_as_they_are(home):
    """The baseline demo sweep with the tiny profile through the command line (also the papermill smoke
    run of 02): its table and figure go beside the runs, each run is recorded with its plots, and a
    second start skips every run and writes the same bytes."""
    import pandas as pd
    from helpers import png_outputs

    from lib import runs

    before = results_snapshot()
    command = ["sweep", "params/sweeps/baseline.yaml", "--profile", "tiny", "-p", "max_chars=2500"]
    done = cli(home, *command)
    assert done.returncode == 0, done.stderr[-3000:]
    assert results_snapshot() == before
    written = list((home / "runs" / "sweeps").glob("baseline-*/tables/baseline.csv"))
    assert len(written) == 1 and str(written[0].parent.parent) in done.stdout
    table = pd.read_csv(written[0])
    assert set(table.language) == {"pl", "tr", "ru"} and set(table.model) == {"tiny-random"}
    assert {"bits_per_char", "bits_per_byte", "perplexity", "chars_per_token"} <= set(table.metric)
    assert "all" in set(table.source) and len(set(table.source)) > 2  # the whole and per source
    # A random model spreads its guesses over the whole 49,152-token vocabulary:
    # about log2(49152) = 15.6 bits per token, whatever the language.
    wide = table[table.source == "all"].pivot_table(index="language", columns="metric", values="value")
    assert (wide.bits_per_char * wide.chars_per_token).between(14.5, 17).all()
    for run in table.run_id.unique():
        record = runs.load_record(home / "runs" / "02_baseline_eval" / run)
        assert record["status"] == "complete" and record["wall_seconds"] > 0
        assert png_outputs(home / "runs" / "02_baseline_eval" / run / "02_baseline_eval.ipynb") >= 1
    outputs = sorted(written[0].parent.parent.rglob("*.*"))
    first = {p: p.read_bytes() for p in outputs}
    again = cli(home, *command)
    assert again.returncode == 0 and again.stdout.count("skipped") == 6, again.stdout[-2000:]
    assert {p: p.read_bytes() for p in outputs} == first


# ---------------------------------------------------------------- kill, Ctrl-C, two starts


LAPT = ["run", "03_lapt", "--profile", "tiny", "-p", "max_steps=24", "-p", "save_steps=6", "-p", "eval_steps=0",
        "-p", "log_steps=6"]


def after_rows(run_dir: Path) -> dict:
    rows = json.loads((run_dir / "metrics.json").read_text())["rows"]
    return {(r["language"], r["split"], r["metric"]): r["value"] for r in rows if r["stage"] == "after"}


def kill_when(process: subprocess.Popen, ready, what: str) -> None:
    try:
        wait_for(lambda: ready() or process.poll() is not None, 300, what)
        assert process.poll() is None, f"the run ended before {what}: {process.stderr.read()[-2000:]}"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


SFT = ["-p", "route=sft", "-p", "task=translation_choice_from_en", "-p", "max_steps=16", "-p", "save_steps=4",
       "-p", "max_train_items=64"]


@pytest.fixture(scope="module")
def uninterrupted(home, shared_cache, tmp_path_factory) -> dict[str, Path]:
    """The LAPT and SFT runs of the kill tests, run once without interruption."""
    reference = new_home(tmp_path_factory.mktemp("reference"), shared_cache, home / "corpora")
    assert cli(reference, *LAPT).returncode == 0
    assert cli(reference, "run", "06_task_tuning", "--profile", "tiny", *SFT).returncode == 0
    return {"lapt": next((reference / "runs" / "03_lapt").glob("03_lapt-*")),
            "sft": next((reference / "runs" / "06_task_tuning").glob("06_task_tuning-*"))}


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["run", "sweep"])
def test_sigkill_then_rerun_resumes_lapt_to_the_same_metrics(home, shared_cache, uninterrupted, tmp_path, entry):
    sweep = write(tmp_path, "lapt.yaml", "steps:\n  - notebook: 03_lapt\n    params: {max_steps: 24, save_steps: 6, "
                  "eval_steps: 0, log_steps: 6}\n    collect: true\n")
    args = LAPT if entry == "run" else ["sweep", sweep, "--profile", "tiny"]
    expected = after_rows(uninterrupted["lapt"])

    killed = new_home(tmp_path, shared_cache, home / "corpora")
    process = start(killed, *args)
    checkpoints = killed / "runs" / "03_lapt"
    kill_when(process, lambda: bool(list(checkpoints.glob("*/checkpoints/checkpoint-12"))), "checkpoint-12")
    run_dir = next(checkpoints.glob("03_lapt-*"))
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"  # as the kill left it
    assert not (run_dir / "metrics.json").exists()

    done = cli(killed, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming the running run" in done.stdout + done.stderr and "is gone" in done.stdout + done.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-12") or metrics["resumed_from"].endswith("checkpoint-18")
    assert json.loads((run_dir / "run.json").read_text())["resumed"] is True
    assert after_rows(run_dir) == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["run", "sweep"])
def test_sigkill_then_rerun_resumes_sft(home, shared_cache, uninterrupted, tmp_path, entry):
    sweep = write(tmp_path, "sft.yaml", "steps:\n  - notebook: 06_task_tuning\n    params: {route: sft, task: "
                  "translation_choice_from_en, max_steps: 16, save_steps: 4, max_train_items: 64}\n    collect: true\n")
    args = ["run", "06_task_tuning", "--profile", "tiny", *SFT] if entry == "run" else ["sweep", sweep, "--profile",
                                                                                      "tiny"]
    expected = json.loads((uninterrupted["sft"] / "metrics.json").read_text())

    killed = new_home(tmp_path, shared_cache, home / "corpora")
    process = start(killed, *args)
    runs_of = killed / "runs" / "06_task_tuning"
    kill_when(process, lambda: bool(list(runs_of.glob("*/checkpoints/checkpoint-8"))), "checkpoint-8")
    done = cli(killed, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = next(runs_of.glob("06_task_tuning-*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from"] and metrics["train"]["global_step"] == 16
    values = {(r["n_shot"], r["metric"]): r["value"] for r in metrics["rows"]}
    assert values == pytest.approx({(r["n_shot"], r["metric"]): r["value"] for r in expected["rows"]}, abs=1e-6)


@pytest.mark.slow
def test_two_starts_of_one_run_do_not_share_it(home):
    args = ["run", "02_baseline_eval", "--profile", "tiny", "-p", "max_chars=2300"]
    first = start(home, *args)
    locks = lambda: list((home / "runs" / "02_baseline_eval").glob("*/.lock"))  # noqa: E731
    try:
        wait_for(lambda: bool(locks()) or first.poll() is not None, 300, "the first start to claim its run")
        assert first.poll() is None, first.stderr.read()
        # Paused while it holds the run, so the second start meets it however slowly either starts.
        os.killpg(first.pid, signal.SIGSTOP)
        second = start(home, *args)
        second_code, refused = second.wait(timeout=600), second.stderr.read()
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    first_code, first_err = first.wait(timeout=600), first.stderr.read()
    assert second_code == 2 and first_code == 0, (refused, first_err)
    assert "already running" in refused.strip().splitlines()[-1] and "Traceback" not in refused
    assert not locks()


@pytest.mark.slow
def test_ctrl_c_marks_the_run_interrupted_and_says_how_to_resume(home, tmp_path):
    before = results_snapshot()
    process = start(home, *LAPT[:-2], "-p", "max_steps=400")
    runs_of = home / "runs" / "03_lapt"
    try:
        wait_for(lambda: bool(list(runs_of.glob("*/checkpoints/checkpoint-*"))) or process.poll() is not None, 300,
                 "training")
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the foreground group
    code = process.wait(timeout=300)  # the stopped kernel is shut down first (slow on a loaded machine)
    err = process.stderr.read()
    assert code == 130 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("interrupted: ") and "resume" in err
    run_dir = next(d for d in runs_of.glob("03_lapt-*") if (d / "checkpoints").is_dir())
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted" and not (run_dir / "metrics.json").exists()
    assert not (run_dir / ".lock").exists()
    assert results_snapshot() == before
