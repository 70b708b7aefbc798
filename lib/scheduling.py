"""Which runs of a sweep wait for which, and the loop that starts runs as their inputs complete.

A run waits for every earlier run whose output it reads or whose shared build it would race:

- a reference: any parameter value (inside lists too) that is an earlier run's directory
  (``@id`` in the sweep file; a model, donor, base, ...);
- a corpus: a run with a ``corpus_tag`` reads the corpora of its language, of English and of its
  tasks' languages under its tags, so it waits for the 01_prepare_data runs that build them;
- a shared build: corpus builds share downloaded packages (they run one after another), and runs
  that build the same instruction set (05's ``data_tag``, 07's self-calibration set) do too;
- its own twin: a run planned twice runs once; the second finds it complete.

The loop in :func:`run_all` follows the serial sweep's rules: a complete run is skipped, an
unfinished one resumes (``runs.execute`` does both), a failed run's dependents are not started,
the independent runs finish, and then the failures are raised together.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lib import runs
from lib.params import as_dict
from lib.preflight import CORPUS_BUILDER, corpora

POLL_S = 0.5  # how often finished workers are looked for


class Planned(Protocol):
    """What the scheduler needs of a planned run (lib.sweep.PlannedRun)."""

    stage: str
    params: Any
    varying: dict[str, Any]
    run_dir: Path


# ---------------------------------------------------------------- the dependency graph


def dependencies(planned: Sequence[Planned]) -> list[set[int]]:
    """For each run, the indices of the earlier runs it must wait for (see the module's doc)."""
    needs: list[set[int]] = []
    for i, run in enumerate(planned):
        values = set(_strings(as_dict(run.params)))
        reads = corpora_read(run)
        builds = shared_builds(run)
        need = set()
        for j, earlier in enumerate(planned[:i]):
            directory = str(earlier.run_dir)
            referenced = directory in values or any(v.startswith(directory + "/") for v in values)
            if (referenced or earlier.run_dir == run.run_dir or builds & shared_builds(earlier)
                    or (earlier.stage == CORPUS_BUILDER and _reads(reads, built_corpus(earlier)))):
                need.add(j)
        needs.append(need)
    return needs


def corpora_read(run: Planned) -> set[tuple[str, str]] | None:
    """The (language, corpus_tag) pairs a run may read, generously: its own language and English
    under each of its tags, plus what preflight knows it reads (08's task languages). ``None``:
    a run with a corpus tag but no language, which may read any language of its tags."""
    params = run.params
    if run.stage == CORPUS_BUILDER or not hasattr(params, "corpus_tag"):
        return set()
    tags = {params.corpus_tag, getattr(params, "english_corpus_tag", "") or params.corpus_tag}
    if not hasattr(params, "language"):
        return None
    pairs = set(corpora(run.stage, params))
    languages = {params.language, "en"} | {language for language, _ in pairs}
    return pairs | {(language, tag) for language in languages for tag in tags}


def built_corpus(run: Planned) -> tuple[str, str]:
    return run.params.language, run.params.corpus_tag


def shared_builds(run: Planned) -> set[tuple[str, ...]]:
    """Builds under the artifacts directory that two runs at once would race to publish."""
    params = run.params
    if run.stage == CORPUS_BUILDER:
        return {("downloads",)}  # every corpus build fetches packages into one shared cache
    builds = set()
    if hasattr(params, "data_tag") and hasattr(params, "language"):
        builds.add(("instructions", params.language, params.data_tag))
    if getattr(params, "calibrate", False):
        from lib.lep.calibration import instruction_tag

        builds.add(("instructions", params.language, instruction_tag(params.corpus_tag)))
    return builds


def _reads(reads: set[tuple[str, str]] | None, corpus: tuple[str, str]) -> bool:
    if reads is None:
        return True
    return corpus in reads


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


# ---------------------------------------------------------------- the loop


def prepare_shared(planned: Sequence[Planned], log: Callable[[str], None] = print) -> None:
    """Made once here before runs start at once, as two runs would race to create them: the
    Jupyter kernel's registration and the packaged models (and paper tokenizers) the runs name."""
    from lib import models
    from lib.preflight import model_specs
    from lib.vocab.paper_tokenizers import PAPER_TOKENIZERS, paper_tokenizer_dir

    runs.ensure_kernel()
    for spec in dict.fromkeys(spec for run in planned for spec in model_specs(run.params)):
        if spec not in models.REGISTRY and spec not in PAPER_TOKENIZERS:
            continue  # a run directory, a checkpoint or a hub id: nothing shared to build
        started = time.monotonic()
        if spec in models.REGISTRY:
            models.resolve(spec)
        else:
            paper_tokenizer_dir(spec)
        if time.monotonic() - started > 1:
            log(f"{spec}: prepared once for every run ({time.monotonic() - started:.0f} s)")


@dataclass(frozen=True)
class RunJob:
    """One run as a worker executes it (pickled to a worker process or a SLURM job)."""

    stage: str
    params: Any
    force: bool
    provenance: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str = ""  # why it failed, in one line


class Launcher(Protocol):
    """Starts a run somewhere and reports when it ends (lib.launchers has the implementations)."""

    def start(self, job: RunJob, *, prefix: str, device: str | None) -> Any: ...

    def poll(self, handle: Any) -> Outcome | None: ...  # None while it runs

    def stop(self, handles: list[Any]) -> None: ...  # Ctrl-C: interrupt them and wait


def serialized(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` for several threads at once (workers' output readers): one whole line at a time."""
    lock = threading.Lock()

    def locked(message: str) -> None:
        with lock:
            log(message)

    return locked


def release_lock(run_dir: Path, launch_id: str) -> bool:
    """Drop the lock a job left when it ended without completing its run (a SLURM job killed at its
    time limit). ``runs.execute`` takes over a dead process's lock only on its own host; here the
    job is known to have ended, so its lock (the pid and host its record names) is stale."""
    lock = run_dir / runs.LOCK_FILE
    try:
        record = runs.load_record(run_dir)
        owner = lock.read_text()
    except (OSError, ValueError):
        return False
    ours = record.get("provenance", {}).get("launch_id") == launch_id
    if not ours or owner != f"{record.get('pid')} {record.get('host')}":
        return False  # not this job's: another process holds the run
    lock.unlink(missing_ok=True)
    return True


class SweepRunsFailed(runs.RunError):
    """Some runs failed (and their dependents were not started); the others finished."""


def run_all(planned: Sequence[Planned], launcher: Launcher, *, slots: Sequence[str | None], force: bool,
            provenance: dict[str, Any], log: Callable[[str], None] = print) -> None:
    """Run every planned run as soon as the runs it needs are complete, at most ``len(slots)`` at
    once; a slot is a device (CUDA_VISIBLE_DEVICES) or None. Raises SweepRunsFailed at the end
    when a run failed."""
    needs = dependencies(planned)
    total = len(planned)
    labels = [f"[{i + 1}/{total}] {r.stage} {r.varying or ''}".rstrip() for i, r in enumerate(planned)]
    pending = list(range(total))
    done: set[int] = set()
    failed: dict[int, str] = {}
    not_started: dict[int, int] = {}  # run -> the failed or not-started run it needed
    free = list(slots)
    running: dict[int, tuple[Any, str | None]] = {}
    launch_ids: dict[int, str] = {}
    try:
        while pending or running:
            changed = False
            for i in list(pending):
                blocked = sorted(needs[i] & (set(failed) | set(not_started)))
                if blocked:
                    pending.remove(i)
                    not_started[i] = blocked[0]
                    log(f"{labels[i]}: not started; it needs {labels[blocked[0]]}, which did not finish")
                    changed = True
                    continue
                if not needs[i] <= done:
                    continue
                run = planned[i]
                if runs.is_complete(run.run_dir) and not force:
                    pending.remove(i)
                    done.add(i)
                    log(f"{labels[i]}: complete, skipped ({run.run_dir.name})")
                    changed = True
                    continue
                if not free:
                    continue
                device = free.pop(0)
                launch_ids[i] = uuid.uuid4().hex[:12]  # marks the record this job writes (release_lock)
                job = RunJob(run.stage, run.params, force, provenance | {"launch_id": launch_ids[i]})
                prefix = f"[{i + 1}/{total} {run.stage}]"
                log(f"{labels[i]}: running in {run.run_dir}" + (f" on device {device}" if device is not None else ""))
                running[i] = (launcher.start(job, prefix=prefix, device=device), device)
                pending.remove(i)
                changed = True
            for i, (handle, device) in list(running.items()):
                outcome = launcher.poll(handle)
                if outcome is None:
                    continue
                del running[i]
                free.append(device)
                free.sort(key=lambda d: list(slots).index(d))  # the first free device first, as at the start
                changed = True
                run_dir = planned[i].run_dir
                if outcome.ok and runs.is_complete(run_dir):
                    done.add(i)
                    log(f"{labels[i]}: done in {runs.load_record(run_dir)['wall_seconds']} s")
                else:
                    release_lock(run_dir, launch_ids[i])
                    failed[i] = outcome.message or "it ended without completing"
                    log(f"{labels[i]}: FAILED: {failed[i]}")
            if running and not changed:
                time.sleep(POLL_S)
            elif not running and not changed:
                raise AssertionError(f"no run can start: {[labels[i] for i in pending]}")  # needs are acyclic
    except BaseException:
        if running:
            log(f"stopping {len(running)} running run(s): {', '.join(labels[i] for i in running)}")
            launcher.stop([handle for handle, _ in running.values()])
        raise
    if failed:
        parts = [f"{len(failed)} run(s) failed: " + "; ".join(f"{labels[i]} ({failed[i]})" for i in sorted(failed))]
        if not_started:
            parts.append(f"not started, as they need a failed run: {', '.join(labels[i] for i in sorted(not_started))}")
        parts.append(f"{len(done)} other run(s) complete")
        raise SweepRunsFailed("; ".join(parts))
