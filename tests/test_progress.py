"""What a headless run shows: notebook sections and step bars on the terminal, the Jupyter
machinery's noise in the run's kernel.log, nothing under --quiet."""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from pathlib import Path

import nbformat
import pytest

from lib import progress
from lib.progress import CHANNEL_ENV, Bar, Display, Tail, last_heading, terminal, track
from tests.test_cli_safety import cli, new_home, write

# ---------------------------------------------------------------- sections


@pytest.mark.parametrize(("markdown", "heading"), [
    ("# 03 · LAPT\n\nContinued pre-training.", "# 03 · LAPT"),
    ("## Before\n\ntext\n\n### 3. Train ##", "### 3. Train"),  # the last one; closing hashes dropped
    ("   ## Indented up to three spaces", "## Indented up to three spaces"),
    ("Plain text, no heading.", None),
    ("#hashtag is not a heading", None),
    ("####### seven is too many", None),
    ("    ## four spaces is a code block", None),
    ("## Real\n```python\n# a comment in code\n```", "## Real"),
    ("~~~\n# code only\n~~~", None),
    ("##", None),  # an empty heading names no section
])
def test_last_heading(markdown, heading):
    assert last_heading(markdown) == heading


def test_a_markdown_cell_prints_its_heading_and_a_code_cell_nothing():
    out = io.StringIO()
    display = Display(out)
    display.on_cell_start(cell=nbformat.v4.new_code_cell("# not a section\nx = 1"), cell_index=0)
    assert out.getvalue() == ""
    display.on_cell_start(cell=nbformat.v4.new_markdown_cell("## Train\n\nPacked blocks."), cell_index=1)
    assert out.getvalue() == "[0:00:00] ## Train\n"


# ---------------------------------------------------------------- the kernel side: events in the file


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_bar_reports_its_start_its_end_and_few_steps_between(tmp_path, monkeypatch):
    channel = tmp_path / "progress.jsonl"
    monkeypatch.setenv(CHANNEL_ENV, str(channel))
    with Bar("scoring", 1000, unit="batch") as bar:
        for _ in range(1000):
            bar.update()
    written = events(channel)
    assert written[0] == {"id": written[0]["id"], "n": 0, "desc": "scoring", "total": 1000, "unit": "batch"}
    assert written[-1] == {"id": written[0]["id"], "n": 1000, "done": True}
    assert len(written) <= 4  # throttled: the start, the last step, the end (and at most one between)


def test_without_a_channel_a_bar_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(CHANNEL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert list(track(range(5), "scoring")) == [0, 1, 2, 3, 4]
    assert list(tmp_path.iterdir()) == []


def test_track_takes_the_total_from_the_iterable_and_ends_where_it_stopped(tmp_path, monkeypatch):
    channel = tmp_path / "progress.jsonl"
    monkeypatch.setenv(CHANNEL_ENV, str(channel))
    for item in track(range(10), "generating", unit="batch"):
        if item == 3:
            break
    written = events(channel)
    assert written[0]["total"] == 10 and written[-1]["done"] and written[-1]["n"] == 3


def test_an_unwritable_channel_never_stops_the_loop(tmp_path, monkeypatch):
    monkeypatch.setenv(CHANNEL_ENV, str(tmp_path / "missing" / "progress.jsonl"))
    assert sum(track(range(4), "scoring")) == 6


def test_the_trainer_callback_counts_optimizer_steps_from_a_resumed_step(tmp_path, monkeypatch):
    from transformers import TrainerControl, TrainerState

    channel = tmp_path / "progress.jsonl"
    monkeypatch.setenv(CHANNEL_ENV, str(channel))
    callback, control = progress.trainer_callback(), TrainerControl()
    state = TrainerState(max_steps=10, global_step=4, is_world_process_zero=True)
    callback.on_train_begin(None, state, control)
    state.global_step = 10
    callback.on_step_end(None, state, control)
    callback.on_train_end(None, state, control)
    written = events(channel)
    assert written[0] | {"id": 0} == {"id": 0, "n": 4, "desc": "train", "total": 10, "unit": "step"}
    assert written[-1]["n"] == 10 and written[-1]["done"]

    channel.unlink()
    other = progress.trainer_callback()
    other.on_train_begin(None, TrainerState(max_steps=10, is_world_process_zero=False), control)
    assert not channel.exists()  # only the first process reports


# ---------------------------------------------------------------- the parent side: reading and drawing


def test_tail_waits_for_a_whole_line_and_skips_garbage(tmp_path):
    path = tmp_path / "progress.jsonl"
    tail = Tail(path)
    assert tail.read() == []  # not there yet
    path.write_text('{"id": "a", "n": 1}\nnot json\n[1, 2]\n{"id": "a", "n"')
    assert tail.read() == [{"id": "a", "n": 1}]
    with path.open("a") as f:
        f.write(': 2, "done": true}\n')
    assert tail.read() == [{"id": "a", "n": 2, "done": True}]
    assert tail.read() == []


def test_off_a_terminal_a_short_bar_prints_one_summary_line():
    out = io.StringIO()
    display = Display(out, live=False)
    display.apply({"id": "a", "n": 0, "desc": "scoring", "total": 3, "unit": "batch"})
    for n in (1, 2, 3):
        display.apply({"id": "a", "n": n})
    display.apply({"id": "a", "n": 3, "done": True})
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("    scoring: 3/3 in 0:00:00"), lines


def test_off_a_terminal_a_long_bar_prints_its_quarters_without_carriage_returns(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    display = Display(out, live=False)
    display.apply({"id": "t", "n": 0, "desc": "train", "total": 100, "unit": "step"})
    for n in range(1, 101):
        now[0] += 1.0
        display.apply({"id": "t", "n": n})
    display.apply({"id": "t", "n": 100, "done": True})
    text = out.getvalue()
    assert "\r" not in text
    assert text.splitlines() == ["    train: 25% (25/100) 0:00:25", "    train: 50% (50/100) 0:00:50",
                                 "    train: 75% (75/100) 0:01:15", "    train: 100/100 in 0:01:40 (1 step/s)"]


def test_a_bar_stopped_early_says_so():
    out = io.StringIO()
    display = Display(out, live=False)
    display.apply({"id": "t", "n": 12, "desc": "train", "total": 24, "unit": "step"})
    display.apply({"id": "t", "n": 13, "done": True})
    assert out.getvalue().startswith("    train: stopped at 13/24 in 0:00:00")


def test_on_a_terminal_bars_redraw_in_place_and_end_with_a_summary():
    out = io.StringIO()
    display = Display(out, live=True)
    display.apply({"id": "t", "n": 0, "desc": "train", "total": 4, "unit": "step"})
    display.apply({"id": "t", "n": 2})
    display.apply({"id": "s", "n": 0, "desc": "scoring", "total": 2, "unit": "batch"})  # nested in training
    display.apply({"id": "s", "n": 2, "done": True})
    display.apply({"id": "t", "n": 4, "done": True})
    display.close()
    text = out.getvalue()
    assert "\r" in text and "2/4" in text  # tqdm's bar
    finished = [line.strip("\r\x1b[A ") for line in text.splitlines() if " in 0:00:00" in line]
    assert [line.split(" in ")[0] for line in finished] == ["scoring: 2/2", "train: 4/4"]


def test_a_bar_that_ended_in_a_section_is_shown_before_the_next_heading(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_text('{"id": "a", "n": 0, "desc": "scoring", "total": 1, "unit": "batch"}\n'
                    '{"id": "a", "n": 1, "done": true}\n')
    out = io.StringIO()
    Display(out, Tail(path), live=False).on_cell_start(cell=nbformat.v4.new_markdown_cell("## Train"))
    assert [line.split(" in ")[0] for line in out.getvalue().splitlines()] == ["    scoring: 1/1", "[0:00:00] ## Train"]


# ---------------------------------------------------------------- around papermill


def test_the_machinery_logs_to_the_kernel_log_and_everything_is_restored(tmp_path, monkeypatch):
    monkeypatch.delenv(CHANNEL_ENV, raising=False)
    papermill_log = logging.getLogger("papermill")
    before = (papermill_log.handlers[:], papermill_log.propagate, papermill_log.level)
    out, kernel_log = io.StringIO(), tmp_path / "kernel.log"
    with terminal(tmp_path, kernel_log, stream=out) as hooks:
        assert os.environ[CHANNEL_ENV] == str(tmp_path / progress.PROGRESS_FILE)
        logging.getLogger("papermill").info("Executing notebook with kernel: langadapt")
        logging.getLogger("traitlets").warning("Kernel is running over TCP without encryption.")
        warnings.warn("Jupyter is migrating its paths", UserWarning, stacklevel=1)
        hooks["on_cell_start"](cell=nbformat.v4.new_markdown_cell("# Title"), cell_index=0)
        with Bar("scoring", 1) as bar:  # as the kernel would, through the variable
            bar.update()
    logged = kernel_log.read_text()
    assert "Executing notebook" in logged and "without encryption" in logged and "migrating its paths" in logged
    assert out.getvalue().splitlines()[0] == "[0:00:00] # Title"
    assert "    scoring: 1/1 in " in out.getvalue()  # read at the end, if not before
    assert not {"Executing", "encryption", "migrating"} & set(out.getvalue().split())
    assert CHANNEL_ENV not in os.environ
    assert (papermill_log.handlers, papermill_log.propagate, papermill_log.level) == before


def test_quiet_draws_nothing_and_sets_no_channel(tmp_path, monkeypatch):
    monkeypatch.delenv(CHANNEL_ENV, raising=False)
    monkeypatch.setattr(progress, "_quiet", False)
    progress.set_quiet(True)
    out = io.StringIO()
    with terminal(tmp_path, tmp_path / "kernel.log", stream=out) as hooks:
        assert hooks == {} and CHANNEL_ENV not in os.environ
        logging.getLogger("papermill").warning("still logged")
    progress.set_quiet(False)
    assert out.getvalue() == "" and "still logged" in (tmp_path / "kernel.log").read_text()


def test_quiet_reaches_the_worker_processes_a_parallel_sweep_starts(monkeypatch):
    """A worker (python -m lib.launchers) never parses --quiet: it reads the environment it inherits."""
    import subprocess
    import sys

    monkeypatch.delenv(progress.QUIET_ENV, raising=False)
    ask = [sys.executable, "-c", "from lib import progress; print(progress.is_quiet())"]
    progress.set_quiet(True)
    try:
        assert subprocess.run(ask, capture_output=True, text=True, env=dict(os.environ)).stdout.strip() == "True"
    finally:
        progress.set_quiet(False)
    assert progress.QUIET_ENV not in os.environ and not progress.is_quiet()
    assert subprocess.run(ask, capture_output=True, text=True, env=dict(os.environ)).stdout.strip() == "False"


# ---------------------------------------------------------------- through the command line

MACHINERY_NOISE = ["without encryption", "Executing notebook", "Executing Cell", "IProgress", "Warning",
                   "Loading weights", "Deprecat", "\r"]


@pytest.fixture(scope="module")
def home(shared_cache, tmp_path_factory) -> Path:
    """A home with the tiny pl and en corpora built through the command line."""
    home = new_home(tmp_path_factory.mktemp("progress"), shared_cache)
    for language in ("pl", "en"):
        done = cli(home, "prepare", "--language", language, "--profile", "tiny")
        assert done.returncode == 0, done.stderr[-3000:]
    return home


@pytest.mark.slow
def test_a_run_shows_its_sections_and_steps_and_no_machinery(home):
    done = cli(home, "run", "03_lapt", "--profile", "tiny")
    assert done.returncode == 0, done.stderr[-3000:]
    shown = done.stderr
    sections = [line.split("] ", 1)[1] for line in shown.splitlines() if line.startswith("[")]
    assert sections == ["# 03 · Language-adaptive pre-training (LAPT)", "## Prepare: every check before any training",
                        "## Before: the base model", "## Train", "## After: merged checkpoint, reloaded and scored"]
    assert "    train: 6/6 in " in shown and "    scoring: " in shown, shown
    assert shown.index("## Train") < shown.index("train: 6/6") < shown.index("## After")
    for noise in MACHINERY_NOISE:
        assert noise not in shown, (noise, shown)
    assert '"status": "complete"' in done.stdout  # stdout keeps the run's record alone
    (run_dir,) = (home / "runs" / "03_lapt").glob("03_lapt-*")
    assert "Executing notebook with kernel" in (run_dir / "kernel.log").read_text()
    executed = nbformat.read(run_dir / "03_lapt.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "trained 6 steps" in printed  # what the notebook prints still lands in the executed notebook


@pytest.mark.slow
def test_quiet_sweep_shows_no_sections_and_keeps_errors(home, tmp_path):
    sweep = write(tmp_path, "one.yaml", "steps:\n  - notebook: 02_baseline_eval\n    params: {max_chars: 2100}\n"
                  "    collect: true\n")
    done = cli(home, "sweep", sweep, "--profile", "tiny", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "##" not in done.stderr and "scoring" not in done.stderr, done.stderr
    assert done.stdout.rstrip().endswith(" rows")
    failed = cli(home, "run", "99_nothing", "--quiet")
    assert failed.returncode == 2 and failed.stderr.strip().splitlines()[-1].startswith("error: unknown notebook")
