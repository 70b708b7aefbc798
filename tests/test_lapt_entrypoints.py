"""03_lapt end to end through its two entry points, on tiny corpora built by lib.corpus:
the notebook under papermill, and scripts/train_lapt.py under `accelerate launch` on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import png_outputs

from lib import params as P
from lib.paths import PROJ_ROOT
from lib.stages import lapt

pytestmark = pytest.mark.slow

TINY = {"model": "tiny-random", "corpus_tag": "tiny", "block_size": 64, "batch_size": 4, "max_steps": 4,
        "eval_steps": 2, "save_steps": 2, "log_steps": 1, "val_max_chars": 1500, "test_max_chars": 2000,
        "english_max_chars": 0, "english_general_max_chars": 0, "eval_max_length": 128, "eval_stride": 64,
        "learning_rate": 0.001}


@pytest.fixture(scope="module")
def tiny_corpora(isolated_home):
    from lib import stages
    from lib.stages import prepare_data

    # the tiny profile's corpus: a tag holds one build, whichever test of the session makes it first
    prepare_data.build(stages.resolve(prepare_data.STAGE, profile="tiny", overrides={"language": "pl"}))
    return isolated_home


def test_notebook_runs_headless(tiny_corpora):
    from lib import runs

    params = P.build(lapt.LaptParams, TINY)
    run_dir = runs.execute(lapt.STAGE, params, force=True)
    metrics = runs.load_metrics(run_dir)
    stages = {(r["split"], r["stage"]) for r in metrics["rows"]}
    assert stages == {("test", "before"), ("test", "after"), ("validation", "before"), ("validation", "after")}
    assert metrics["checkpoint_check"]["within_1e-3"]
    assert (run_dir / "model" / "config.json").is_file()
    assert (run_dir / "lapt_bpc.png").is_file() and (run_dir / "validation_bpc.png").is_file()
    assert png_outputs(run_dir / "03_lapt.ipynb") >= 2  # the validation curve and before/after
    executed = json.loads((run_dir / "03_lapt.ipynb").read_text())
    assert executed["metadata"]["papermill"]["parameters"]["model"] == "tiny-random"


def test_script_under_accelerate_launch_on_cpu(tiny_corpora, tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               str(PROJ_ROOT / "scripts" / "train_lapt.py"), "--run-dir", str(run_dir)]
    command += [f"-p{k}={v}" for k, v in TINY.items()]
    done = subprocess.run(command, cwd=tmp_path, env=os.environ | {"LANGADAPT_HOME": str(tiny_corpora)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {r["stage"] for r in metrics["rows"]} == {"before", "after"}
    assert metrics["setup"]["world_size"] == 1
    assert '"within_1e-3": true' in done.stdout
