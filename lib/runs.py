"""Run directories: one notebook executed headlessly with one set of parameters.

A run directory holds the executed notebook, the resolved parameters, the git
commit, package versions, device, wall time and the ``metrics.json`` the
notebook wrote. Its name is a hash of the notebook and the resolved
parameters, so a repeated run finds its finished twin and skips it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from lib import cost, progress
from lib.params import as_dict
from lib.paths import NOTEBOOKS_DIR, PROJ_ROOT, runs_dir
from lib.staging import alive

KERNEL_NAME = "langadapt"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
PARAMS_FILE = "params.yaml"


class RunError(RuntimeError):
    """A run failed or produced no metrics; the message points at its directory."""


def run_id(stage: str, params) -> str:
    """The stage and a hash of its parameters. A parameter named in the class's ``ADDED_LATER``
    is left out while it holds its default (which does what the stage did before it existed),
    so adding an option does not rename, and rerun, every finished run."""
    added_later = getattr(type(params), "ADDED_LATER", ())
    defaults = {f.name: _default(f) for f in dataclasses.fields(params) if f.name in added_later}
    values = {k: v for k, v in as_dict(params).items()
              if k != "run_dir" and not (k in defaults and v == defaults[k])}
    blob = json.dumps({"stage": stage, "params": values}, sort_keys=True)
    return f"{stage}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def run_path(stage: str, params, root: Path | None = None) -> Path:
    return (root or runs_dir()) / stage / run_id(stage, params)


def is_complete(run_dir: Path) -> bool:
    record = run_dir / RUN_FILE
    if not record.is_file() or not (run_dir / METRICS_FILE).is_file():
        return False
    return json.loads(record.read_text()).get("status") == "complete"


def execute(stage: str, params, *, root: Path | None = None, force: bool = False,
            log_output: bool = False, provenance: dict[str, Any] | None = None, log=print) -> Path:
    """Execute ``notebooks/<stage>.ipynb`` (a checked stage name) with ``params`` in its run directory.

    - A complete twin is skipped (unless ``force``).
    - An unfinished one (killed, interrupted, failed) is resumed: its files stay, so a
      training stage picks up its last checkpoint and its cached scores. ``force``
      starts clean.
    - The directory is claimed atomically (``.lock``): a second start of the same run
      while the first is alive fails with RunBusyError.
    - A failure is recorded as ``failed`` and raises RunError; Ctrl-C is recorded as
      ``interrupted`` and re-raised.
    """
    import papermill

    run_dir = run_path(stage, params, root)
    if is_complete(run_dir) and not force:
        return run_dir
    grid = cost.grid_from_env()  # a bad LANGADAPT_COUNTRY fails here, before the run
    with _claimed(run_dir):
        previous = _previous_record(run_dir)
        if force:
            _clear(run_dir)
        elif previous:
            pid = previous.get("pid")
            log(f"{run_dir.name}: resuming the {previous.get('status', 'unfinished')} run"
                + (f" (its process {pid} is gone)" if previous.get("status") == "running" else "")
                + "; --force starts clean")
        values = as_dict(params) | {"run_dir": str(run_dir)}
        (run_dir / PARAMS_FILE).write_text(yaml.safe_dump(values, sort_keys=False, allow_unicode=True))
        (run_dir / METRICS_FILE).unlink(missing_ok=True)  # written afresh by the notebook that completes
        record = environment_record() | {
            "stage": stage, "run_id": run_dir.name, "status": "running",
            "started": _now(), "pid": os.getpid(), "host": platform.node(), "provenance": provenance or {},
            "resumed": bool(previous) and not force,
            "starts": (previous.get("starts", 1) + 1) if previous and not force else 1,
        }
        meter = cost.Meter(run_dir, grid, starts=record["starts"],
                           earlier=previous.get("cost") if previous and not force else None)
        record["cost"] = meter.block()  # the earlier starts' cost until this one stops
        _write_record(run_dir, record)
        ensure_kernel()
        notebook = NOTEBOOKS_DIR / f"{stage}.ipynb"
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(PROJ_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        # The kernel draws inline, so the executed notebook holds its figures; a backend chosen for
        # this process (Agg on the command line) must not reach it.
        os.environ.pop("MPLBACKEND", None)
        meter.start()
        start = time.perf_counter()
        try:
            with progress.terminal(run_dir, run_dir / KERNEL_LOG) as shown:  # sections and step bars
                papermill.execute_notebook(
                    str(notebook), str(run_dir / notebook.name), parameters=values,
                    kernel_name=KERNEL_NAME, cwd=str(NOTEBOOKS_DIR),
                    progress_bar=False, log_output=log_output,
                    kernel_manager_class=_kernel_manager(run_dir / KERNEL_LOG),
                    # When the last cell returns, everything the run writes is written; a graceful
                    # shutdown only tears down an interpreter holding torch, transformers and peft,
                    # which takes 1.5-3 s per run (a tenth of a tiny run). nbclient's immediate
                    # shutdown ends the kernel process without it.
                    shutdown_kernel="immediate", **shown,
                )
        except KeyboardInterrupt:
            record |= {"status": "interrupted", "wall_seconds": round(time.perf_counter() - start, 2),
                       "finished": _now(), "cost": meter.stop("interrupted")}
            _write_record(run_dir, record)
            raise
        except Exception as exc:  # recorded, then re-raised: papermill must not report success
            record |= {"status": "failed", "error": str(exc)[-4000:],
                       "wall_seconds": round(time.perf_counter() - start, 2), "finished": _now(),
                       "cost": meter.stop("failed")}
            _write_record(run_dir, record)
            raise RunError(f"{stage} failed: {_cause(exc)} (the executed notebook: {run_dir / notebook.name})") \
                from exc
        if not (run_dir / METRICS_FILE).is_file():
            record |= {"status": "failed", "error": "notebook wrote no metrics.json", "cost": meter.stop("failed")}
            _write_record(run_dir, record)
            raise RunError(f"{stage} finished but wrote no {METRICS_FILE} in {run_dir}")
        record |= {"status": "complete", "finished": _now(),
                   "wall_seconds": round(time.perf_counter() - start, 2), "cost": meter.stop("complete")}
        _write_record(run_dir, record)
    return run_dir


KERNEL_LOG = "kernel.log"


def _kernel_manager(log_path: Path) -> type:
    """A kernel manager whose kernel writes its own stderr (Jupyter's transport warnings, library
    warnings, its complaints when it is stopped) to the run's ``kernel.log`` instead of the
    terminal; what the notebook prints still reaches the executed notebook and the log output."""
    from jupyter_client.manager import AsyncKernelManager

    class RunKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw.setdefault("stderr", open(log_path, "ab"))  # noqa: SIM115  (the kernel process owns it)
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return RunKernelManager


class RunBusyError(RunError):
    """The same run is already going on in another live process."""


LOCK_FILE = ".lock"


@contextmanager
def _claimed(run_dir: Path):
    """Hold ``run_dir/.lock`` (created atomically) while the run executes; a lock left by a dead
    process (a killed run) is taken over."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create the run directory {run_dir}: {exc.strerror or exc}") from exc
    lock = run_dir / LOCK_FILE
    me = f"{os.getpid()} {platform.node()}"
    # The lock appears with its owner already written (a private file hard-linked into place, which
    # fails if the lock exists), so another start never reads an empty lock and takes it for stale.
    mine = run_dir / f"{LOCK_FILE}.{os.getpid()}"
    try:
        mine.write_text(me)
    except OSError as exc:
        raise RunError(f"cannot write in the run directory {run_dir}: {exc.strerror or exc}") from exc
    try:
        for _ in range(2):
            try:
                os.link(mine, lock)
            except FileExistsError:
                pid, host = _lock_owner(lock)
                if pid is not None and (host != platform.node() or alive(pid)):
                    raise RunBusyError(f"{run_dir.name} is already running (process {pid} on {host}); wait for "
                                       "it or stop it first") from None
                lock.unlink(missing_ok=True)  # its process is gone: the run is ours to resume
                continue
            except OSError as exc:
                raise RunError(f"cannot write in the run directory {run_dir}: {exc.strerror or exc}") from exc
            break
        else:
            raise RunBusyError(f"{run_dir.name}: another process claimed it at the same moment; try again")
    finally:
        mine.unlink(missing_ok=True)
    try:
        yield
    finally:
        if lock.is_file() and lock.read_text() == me:
            lock.unlink()


def _lock_owner(lock: Path) -> tuple[int | None, str]:
    try:
        pid, _, host = lock.read_text().partition(" ")
        return int(pid), host
    except (OSError, ValueError):
        return None, ""  # half-written or gone: treated as stale


def _previous_record(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _clear(run_dir: Path) -> None:
    """Everything but the lock: a forced run starts clean."""
    for child in run_dir.iterdir():
        if child.name == LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _cause(exc: Exception) -> str:
    """The notebook's own exception in one line (papermill's error carries its name and value)."""
    name, value = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if name:
        return f"{name}: {value}"
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__


def active_run_dir(stage: str, run_dir: str) -> Path:
    """The directory a notebook writes to: its run's, or a scratch one in JupyterLab."""
    if run_dir:
        path = Path(run_dir)
    else:
        path = runs_dir() / stage / "interactive"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_metrics(run_dir: str | Path, rows: list[dict[str, Any]], **summary: Any) -> Path:
    """Write metrics.json: tidy rows (one metric value each) plus free-form summary."""
    for i, row in enumerate(rows):
        missing = {"metric", "value"} - set(row)
        if missing:
            raise ValueError(f"metrics row {i} lacks {sorted(missing)}: {row}")
    path = Path(run_dir) / METRICS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"rows": rows, **summary}, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def load_metrics(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / METRICS_FILE).read_text())


def base_model_of(spec: str) -> str:
    """The model at the root of a chain of runs: a run directory trained from a run directory
    trained from ``smollm2-135m-instruct`` is ``smollm2-135m-instruct`` (tables label rows by it)."""
    import yaml

    for _ in range(32):  # chains are short; a loop guards against a cycle of hand-edited files
        params_file = Path(spec) / PARAMS_FILE
        if not (Path(spec) / "model").is_dir() or not params_file.is_file():
            return spec
        parent = (yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}).get("model")
        if not isinstance(parent, str) or not parent:
            return spec
        spec = parent
    return spec


def load_record(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / RUN_FILE).read_text())


def environment_record() -> dict[str, Any]:
    """What a run needs to be reproduced: code version, libraries, machine."""
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": _device(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "argv": sys.argv,
    }


def package_versions() -> dict[str, str]:
    names = []
    for line in (PROJ_ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split("==")[0])
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def ensure_kernel() -> None:
    """Register this environment's Jupyter kernel if it is not there yet (idempotent)."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if KERNEL_NAME in specs:
        spec = json.loads((Path(specs[KERNEL_NAME]) / "kernel.json").read_text())
        if Path(spec["argv"][0]).resolve() == Path(sys.executable).resolve():
            return
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME,
         "--display-name", "Python (langadapt)"],
        check=True, capture_output=True,
    )


def _device() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"cpu ({platform.processor() or platform.machine()})"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=PROJ_ROOT, capture_output=True, text=True)
    except FileNotFoundError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _write_record(run_dir: Path, record: dict[str, Any]) -> None:
    (run_dir / RUN_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
