"""Where the runs of a parallel sweep execute: worker processes on this machine, or jobs through
submitit (SLURM, its local executor, its in-process debug executor).

    python -m lib sweep FILE --workers 2                  # two runs at once, one process each
    python -m lib sweep FILE --devices 0,1                # one run per GPU (CUDA_VISIBLE_DEVICES)
    python -m lib sweep FILE --launcher slurm --timeout-min 240 --slurm-partition gpu --slurm-gpus 1

Every worker executes ``runs.execute`` on one run (so the run directory's lock, resume and
record are the same as in a serial sweep) and its output reaches this terminal line by line,
prefixed by the run. A worker process is ``python -m lib.launchers`` with the pickled job on
its standard input.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.paths import PROJ_ROOT
from lib.scheduling import Outcome, RunJob

LAUNCHERS = ("slurm", "local", "debug")
STOP_GRACE_S = 300  # a stopped run's kernel shuts down first (slow on a loaded machine)
LOCAL_NO_LIMIT_MIN = 60 * 24 * 365  # submitit's local executor kills a job after 2 minutes unless told
SLURM_OPTIONS = {  # command-line option -> SlurmExecutor parameter
    "slurm_partition": "partition", "slurm_gpus": "gpus_per_node", "slurm_cpus": "cpus_per_task",
    "slurm_mem_gb": "mem", "slurm_account": "account", "slurm_qos": "qos", "slurm_constraint": "constraint",
    "slurm_setup": "setup",
}


class LaunchError(ValueError):
    """Launch options that cannot work here; the message names the option."""


@dataclass(frozen=True)
class Launch:
    """How a sweep's runs execute when not one after another in this process."""

    launcher: str  # "workers" (processes here) or a submitit executor: slurm, local, debug
    slots: tuple[str | None, ...] | None  # one per concurrent run: its device or None; None = no cap (SLURM)
    timeout_min: int | None = None  # a job's time limit (slurm, local)
    slurm: dict[str, Any] = field(default_factory=dict)  # SlurmExecutor parameters

    def slots_for(self, n_runs: int) -> tuple[str | None, ...]:
        return self.slots if self.slots is not None else (None,) * max(n_runs, 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("parallel runs (default: one after another, in this process)")
    group.add_argument("--workers", type=int, metavar="N",
                       help="run up to N independent runs at once; with GPUs, one per device")
    group.add_argument("--devices", metavar="0,1", help="one worker per listed GPU (CUDA_VISIBLE_DEVICES of each)")
    group.add_argument("--launcher", choices=LAUNCHERS,
                       help="run each run as a submitit job: slurm (a cluster), local (processes here), "
                            "debug (in this process)")
    group.add_argument("--timeout-min", type=int, metavar="MIN",
                       help="time limit of each run's job (slurm: required; local: none by default)")
    group.add_argument("--slurm-partition", metavar="NAME")
    group.add_argument("--slurm-gpus", type=int, metavar="N", help="GPUs per job (one run per job)")
    group.add_argument("--slurm-cpus", type=int, metavar="N", help="CPUs per job")
    group.add_argument("--slurm-mem-gb", type=float, metavar="GB", help="memory per job")
    group.add_argument("--slurm-account", metavar="NAME")
    group.add_argument("--slurm-qos", metavar="NAME")
    group.add_argument("--slurm-constraint", metavar="FEATURES")
    group.add_argument("--slurm-setup", action="append", metavar="COMMAND",
                       help="a shell line run before each job (e.g. 'module load cuda'); repeatable")


def from_args(args: argparse.Namespace) -> Launch | None:
    """The launch the options ask for (None: the serial sweep), or LaunchError before anything runs."""
    launcher, workers, devices = args.launcher, args.workers, args.devices
    if workers is not None and workers < 1:
        raise LaunchError(f"--workers must be 1 or more, got {workers}")
    slurm_given = [name for name in SLURM_OPTIONS if getattr(args, name) is not None]
    if slurm_given and launcher != "slurm":
        raise LaunchError(f"--{slurm_given[0].replace('_', '-')} needs --launcher slurm")
    if args.timeout_min is not None:
        if launcher not in ("slurm", "local"):
            raise LaunchError("--timeout-min needs --launcher slurm or --launcher local")
        if args.timeout_min < 1:
            raise LaunchError(f"--timeout-min must be 1 or more, got {args.timeout_min}")
    if launcher == "debug":
        if (workers or 1) > 1 or devices is not None:
            raise LaunchError("--launcher debug runs one job at a time in this process; drop --workers/--devices")
        return Launch("debug", (None,))
    if launcher == "slurm":
        return _slurm(args, workers, devices)
    if launcher is None and devices is None and (workers or 1) == 1:
        return None
    slots = _device_slots(workers, devices)
    if launcher == "local" and any(s is not None and not s.isdigit() for s in slots):
        raise LaunchError(f"--launcher local gives GPUs by number; CUDA_VISIBLE_DEVICES names them {slots}")
    return Launch(launcher or "workers", slots, args.timeout_min)


def _slurm(args: argparse.Namespace, workers: int | None, devices: str | None) -> Launch:
    if devices is not None:
        raise LaunchError("--devices: SLURM gives each job its GPUs; ask for them with --slurm-gpus")
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if missing:
        raise LaunchError(f"--launcher slurm: {' and '.join(missing)} not found; run the sweep on a SLURM "
                          "login node (or use --workers / --launcher local here)")
    if args.timeout_min is None:
        raise LaunchError("--launcher slurm needs --timeout-min (each run's time limit; submitit's default "
                          "of 5 minutes would stop most runs)")
    return Launch("slurm", (None,) * workers if workers else None, args.timeout_min,
                  slurm_parameters(args))


def slurm_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """submitit SlurmExecutor parameters of the --slurm-* options (and the time limit)."""
    parameters: dict[str, Any] = {"time": args.timeout_min} if args.timeout_min is not None else {}
    for option, name in SLURM_OPTIONS.items():
        value = getattr(args, option)
        if value is None:
            continue
        if option == "slurm_mem_gb":
            if value <= 0:
                raise LaunchError(f"--slurm-mem-gb must be above 0, got {value}")
            value = f"{int(value)}GB" if value == int(value) else f"{int(value * 1024)}MB"
        if option in ("slurm_gpus", "slurm_cpus") and value < 1:
            raise LaunchError(f"--{option.replace('_', '-')} must be 1 or more, got {value}")
        parameters[name] = value
    return parameters


def visible_devices() -> list[str]:
    """The GPUs this process sees, each as a child's CUDA_VISIBLE_DEVICES names it."""
    import torch

    count = torch.cuda.device_count()
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()][:count]
    return [str(i) for i in range(count)]


def _device_slots(workers: int | None, devices: str | None) -> tuple[str | None, ...]:
    """One slot per worker: with GPUs here, each worker its own device (one run per device)."""
    visible = visible_devices()
    if devices is not None:
        try:
            chosen = [int(d) for d in devices.split(",")]
        except ValueError:
            raise LaunchError(f"--devices takes GPU numbers such as 0,1; got {devices!r}") from None
        if not visible:
            raise LaunchError(f"--devices {devices}: this machine has no CUDA GPU (use --workers N for processes)")
        wrong = [d for d in chosen if not 0 <= d < len(visible)]
        if wrong or len(set(chosen)) != len(chosen):
            raise LaunchError(f"--devices {devices}: each GPU once, from 0 to {len(visible) - 1} (this process "
                              f"sees {len(visible)})")
        if workers is not None and workers != len(chosen):
            raise LaunchError(f"--workers {workers} with --devices {devices}: one worker per device; give one of them")
        return tuple(visible[d] for d in chosen)
    n = workers or 1
    if not visible:
        return (None,) * n
    if n > len(visible):
        raise LaunchError(f"--workers {n}: this machine has {len(visible)} GPU(s) and each worker gets its own; "
                          f"use --workers {len(visible)} or fewer (CUDA_VISIBLE_DEVICES= runs on the CPU)")
    return tuple(visible[:n])


def open_launcher(launch: Launch, folder: Path, log) -> Any:
    if launch.launcher == "workers":
        return WorkerProcesses(log)
    return SubmititJobs(launch, folder, log)


# ---------------------------------------------------------------- what a worker runs


def execute_job(job: RunJob, prefix: str = "") -> str:
    """Execute one run here: '' when it completed, else its error in one line (a traceback of an
    unexpected error goes to stderr). Ctrl-C propagates (the run is recorded as interrupted)."""
    from lib import runs

    log = (lambda message: print(f"{prefix} {message}", flush=True)) if prefix else print
    device = os.environ.get("CUDA_VISIBLE_DEVICES")
    log(f"process {os.getpid()} on {platform.node()}" + (f", CUDA_VISIBLE_DEVICES={device}" if device else ""))
    try:
        runs.execute(job.stage, job.params, force=job.force, provenance=job.provenance, log=log)
    except runs.RunError as exc:  # the notebook failed: its message names the executed notebook
        return " ".join(str(exc).split())
    except Exception as exc:  # noqa: BLE001  (reported to the sweep, which goes on with independent runs)
        traceback.print_exc()
        return " ".join(f"{type(exc).__name__}: {exc}".split())
    return ""


def _worker_main() -> int:
    signal.signal(signal.SIGINT, _interrupt_once)
    job = pickle.load(sys.stdin.buffer)
    try:
        error = execute_job(job)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _interrupt_once(signum, frame) -> None:
    """Ctrl-C reaches a worker twice (from the terminal and from the sweep); the second must not
    break the first's cleanup (the run's record, the kernel's shutdown)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


# ---------------------------------------------------------------- worker processes on this machine


@dataclass
class _Worker:
    process: subprocess.Popen
    reader: threading.Thread
    last_error: list[str]


class WorkerProcesses:
    """Each run in its own ``python -m lib.launchers`` process (in this process group, so Ctrl-C in
    the terminal reaches it as it reaches a serial sweep's kernel)."""

    def __init__(self, log) -> None:
        self._log = log  # called from one reader thread per worker (scheduling.serialized makes that safe)

    def start(self, job: RunJob, *, prefix: str, device: str | None) -> _Worker:
        payload = pickle.dumps(job)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(PROJ_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                                if p])
        env["PYTHONUNBUFFERED"] = "1"  # lines reach the terminal as they are written
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        process = subprocess.Popen([sys.executable, "-m", "lib.launchers"], cwd=PROJ_ROOT, env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        process.stdin.write(payload)
        process.stdin.close()
        last_error: list[str] = []
        reader = threading.Thread(target=self._relay, args=(process.stdout, prefix, last_error), daemon=True)
        reader.start()
        return _Worker(process, reader, last_error)

    def _relay(self, stream, prefix: str, last_error: list[str]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip().rsplit("\r", 1)[-1]  # a progress bar's last state
            if line.startswith("error: "):
                last_error[:] = [line.removeprefix("error: ")]
            if line:
                self._log(f"{prefix} {line}")

    def poll(self, worker: _Worker) -> Outcome | None:
        code = worker.process.poll()
        if code is None:
            return None
        worker.reader.join(timeout=10)
        if code == 0:
            return Outcome(True)
        return Outcome(False, worker.last_error[0] if worker.last_error else f"its worker exited with code {code}")

    def stop(self, workers: list[_Worker]) -> None:
        """Interrupt each worker once (a terminal's Ctrl-C may have already), wait for their runs to
        record themselves as interrupted, then end what is left."""
        live = [w.process for w in workers if w.process.poll() is None]
        for process in live:
            _signal(process, signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        try:
            for process in live:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _end(live)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            _end(live)
            raise


def _end(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        _signal(process, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _signal(process: subprocess.Popen, signum: int) -> None:
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------- submitit jobs


@dataclass
class _Job:
    job: Any  # a submitit Job
    prefix: str
    offsets: dict[str, int] = field(default_factory=dict)


class SubmititJobs:
    """Each run as one submitit job; the job's stdout and stderr files are relayed, prefixed."""

    def __init__(self, launch: Launch, folder: Path, log) -> None:
        try:
            import submitit
        except ImportError:
            raise LaunchError("--launcher needs submitit: pip install -r requirements.txt") from None
        self._kind = launch.launcher
        self._log = log
        folder = Path(folder) / "%j"  # one directory per job: its pickles and its logs
        if self._kind == "debug":
            self._executor = submitit.DebugExecutor(folder)
        elif self._kind == "local":
            self._executor = submitit.LocalExecutor(folder)
            self._executor.update_parameters(timeout_min=launch.timeout_min or LOCAL_NO_LIMIT_MIN)
        else:
            self._executor = submitit.SlurmExecutor(folder)
            self._executor.update_parameters(**launch.slurm)
        # the job's python imports lib wherever the job starts (submitit pickles the function by name)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(PROJ_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

    def start(self, job: RunJob, *, prefix: str, device: str | None) -> _Job:
        if self._kind == "local":  # the local executor sets CUDA_VISIBLE_DEVICES from these
            self._executor.update_parameters(gpus_per_node=0 if device is None else 1,
                                             visible_gpus=() if device is None else (int(device),))
        elif self._kind == "slurm":
            self._executor.update_parameters(job_name=f"langadapt-{job.stage}")
        # the debug job runs in this process, where only its own messages can carry the prefix
        submitted = self._executor.submit(execute_job, job, prefix if self._kind == "debug" else "")
        if self._kind != "debug":
            self._log(f"{prefix} submitit job {submitted.job_id}; logs in {submitted.paths.folder}")
        return _Job(submitted, prefix)

    def poll(self, handle: _Job) -> Outcome | None:
        job = handle.job
        if self._kind == "debug":
            error = job.exception()  # runs it now, here (without the post-mortem debugger of job.result())
        else:
            self._relay(handle)
            if not job.done():
                return None
            self._relay(handle)
            error = job.exception()
        if error is not None:
            lines = [line for line in str(error).splitlines() if line.strip() and not line.startswith("---")]
            return Outcome(False, f"{type(error).__name__}: {' '.join(lines[-1:] or lines)} "
                                  f"(logs: {job.paths.stderr})")
        message = job.result()
        return Outcome(not message, message)

    def _relay(self, handle: _Job) -> None:
        for path in (handle.job.paths.stdout, handle.job.paths.stderr):
            try:
                with open(path, "rb") as stream:
                    stream.seek(handle.offsets.get(str(path), 0))
                    text = stream.read()
            except OSError:
                continue
            complete = text.rfind(b"\n") + 1  # a partly written line waits for the next look
            handle.offsets[str(path)] = handle.offsets.get(str(path), 0) + complete
            for line in text[:complete].decode("utf-8", "replace").splitlines():
                line = line.rstrip().rsplit("\r", 1)[-1]
                if line and not line.startswith("submitit INFO"):  # submitit's own bookkeeping
                    self._log(f"{handle.prefix} {line}")

    def stop(self, handles: list[_Job]) -> None:
        if self._kind == "debug":
            return  # it ran in this process: Ctrl-C already went through it
        for handle in handles:
            handle.job.cancel(check=False)
        deadline = time.monotonic() + STOP_GRACE_S
        for handle in handles:
            while not handle.job.done() and time.monotonic() < deadline:
                time.sleep(1)


if __name__ == "__main__":
    sys.exit(_worker_main())
