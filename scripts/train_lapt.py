"""Run one LAPT training outside Jupyter: the same code path as notebooks/03_lapt.ipynb.

One process (a CPU or one GPU)::

    python scripts/train_lapt.py --params params/experiments/curie_pl.yaml --profile cpu

Several GPUs, data parallel, one process per GPU (the effective batch is
batch_size x grad_accum x processes; scoring and export run on the main process)::

    accelerate launch --num_processes 4 scripts/train_lapt.py \\
        --params params/experiments/curie_pl.yaml --profile gpu -p language=tr

The run directory defaults to <artifacts>/runs/03_lapt/<run id> (the id a
notebook run of the same parameters gets). Run the same command again after a
crash or a kill and training resumes from the last checkpoint in it. The run
directory ends up with metrics.json (the before/after rows), model/ (the
merged standalone checkpoint), checkpoints/, tb/ and train_log.csv.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from anywhere without installing

from lib import params as P  # noqa: E402
from lib import runs, stages  # noqa: E402
from lib.stages import lapt  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train_lapt.py", description=__doc__.split("\n")[0])
    parser.add_argument("--params", action="append", default=[], metavar="FILE", help="YAML parameter file")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--profile", help="a params/profiles/ name: tiny, cpu, gpu")
    parser.add_argument("--run-dir", help="where the run writes (default: its id under the runs directory)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, callbacks: list | tuple = ()) -> int:
    from accelerate import PartialState

    from lib.corpus import CorpusError, CorpusNotBuiltError
    from lib.models import ModelSpecError
    from lib.training import TrainingSetupError

    args = parse_args(argv)
    try:
        overrides = dict(P.parse_override(o) for o in args.param)
        params = stages.resolve(lapt.STAGE, profile=args.profile, files=args.params, overrides=overrides)
        run_dir = Path(args.run_dir) if args.run_dir else runs.run_path(lapt.STAGE, params)
        rows, summary = lapt.run_lapt(params, run_dir, callbacks=callbacks)
    except (P.ParamsError, TrainingSetupError, ModelSpecError, CorpusError, CorpusNotBuiltError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if PartialState().is_main_process:
        from lib.training.scoring import comparison

        runs.save_metrics(run_dir, rows, **summary)
        print(comparison(rows).round(4).to_string())
        print(json.dumps({"run_dir": str(run_dir), "checkpoint_check": summary["checkpoint_check"],
                          "wall_seconds": summary["wall_seconds"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
