"""08_evaluate: models x benchmark tasks, zero- and few-shot, into a tidy table with chance,
majority and bootstrap intervals; the ``benchmarks`` figure.

The building blocks are ``lib.tasks`` (tasks, scoring, metrics, the dot plot);
this stage runs every model on every task it names. Copy tasks (``copy``, ``copy:en``)
run zero-shot only. With ``speed_prompts > 0`` every model also generates
``speed_new_tokens`` tokens after that many target-language test paragraphs
(``lib.speed``), and its rows get ``chars_per_second``, ``tokens_per_second`` and
``tokens_per_char`` (timings: these columns vary from run to run, the scores do not).
``labels`` names the models in the rows (one per model, in order), so a run directory
evaluated as a model appears as e.g. ``T`` rather than as its path; ``params.yaml``
records which model each label stands for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.params import (
    DEVICES,
    DTYPES,
    ParamsError,
    check_choice,
    check_labels,
    check_language,
    check_positive,
    check_shots,
    display_names,
)
from lib.tasks.base import SAMPLING, ZERO_SHOT_KINDS, TaskError
from lib.tasks.evaluation import evaluate_task, load_task, resolve_task_ids

STAGE = "08_evaluate"


@dataclass
class EvaluateParams:
    """08_evaluate: models x tasks, zero- and few-shot, into a tidy table with chance and CIs."""

    # registry names, run directories, local paths or hub ids
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct", "gemma3-270m"])
    labels: list[str] = field(default_factory=list)  # names of the models in the rows, one per model (empty: as given)
    language: str = "pl"  # language of the tasks named without one ("offline", a family name)
    tasks: list[str] = field(default_factory=lambda: ["offline"])  # offline | hub | a family | family:language
    shots: list[int] = field(default_factory=lambda: [0, 3])  # numbers of few-shot examples
    corpus_tag: str = "default"  # which corpus build the offline tasks come from (01_prepare_data)
    max_items: int = 500  # cap on evaluated items per task (a fixed hashed subset); 0 means all
    fewshot_sampling: str = "shared"  # shared: one draw per task; per_item: one draw per item
    seed: int = 1234  # few-shot draw
    max_batch_tokens: int = 4096  # tokens per forward pass (several items share one)
    n_bootstrap: int = 1000  # bootstrap resamples for the confidence intervals
    hub_data_dir: str = ""  # local copies of hub datasets (<dir>/<owner>__<name>[/<config>]); empty means the hub
    speed_prompts: int = 0  # generation speed on this many test paragraphs of `language` per model; 0 is off
    speed_new_tokens: int = 128  # tokens generated per speed prompt (read only when speed_prompts > 0)
    dtype: str = "float32"  # float32, bfloat16 or float16 (bfloat16 for 7B models on a GPU)
    device: str = "auto"  # auto (cuda when available), cpu or cuda
    run_dir: str = ""  # set by `python -m lib run`; empty when run interactively

    ADDED_LATER = ("labels", "speed_prompts", "speed_new_tokens")  # at defaults, not in the run id

    def validate(self) -> None:
        check_language(self.language)
        if not self.models:
            raise ParamsError("models must name at least one model")
        check_labels(self.labels, self.models)
        if not self.tasks:
            raise ParamsError("tasks must name at least one task (or 'offline')")
        check_shots(self.shots)
        check_positive("max_items", self.max_items, allow_zero=True)
        check_choice("fewshot_sampling", self.fewshot_sampling, SAMPLING)
        if self.max_batch_tokens < 64:
            raise ParamsError(f"max_batch_tokens must be at least 64, got {self.max_batch_tokens}")
        check_positive("n_bootstrap", self.n_bootstrap, allow_zero=True)
        check_positive("speed_prompts", self.speed_prompts, allow_zero=True)
        check_positive("speed_new_tokens", self.speed_new_tokens)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("device", self.device, DEVICES)
        try:
            ids = resolve_task_ids(self.tasks, self.language)
        except TaskError as exc:
            raise ParamsError(f"tasks: {exc}") from exc
        from lib.tasks.offline import ZERO_SHOT_FAMILIES

        zero_shot_only = [t for t in ids if t.partition(":")[0] in ZERO_SHOT_FAMILIES]
        if zero_shot_only and 0 not in self.shots:
            raise ParamsError(f"shots: {', '.join(zero_shot_only)} run(s) zero-shot only, and shots "
                              f"{self.shots} has no 0")

    def inapplicable(self) -> set[str]:
        return {"speed_new_tokens"} if self.speed_prompts == 0 else set()

    def why_inapplicable(self) -> str:
        return "speed_prompts 0 (the speed measure is off)"


Params = EvaluateParams


SPEED_COLUMNS = ("chars_per_second", "tokens_per_second", "tokens_per_char")  # added to a model's rows
SPEED_SAMPLES = 2  # generated continuations kept per model in metrics.json (timings.speed[].samples)


def build_tasks(params: EvaluateParams) -> dict[str, Any]:
    """The tasks the parameters name, built once (task id -> Task)."""
    return {t: load_task(t, corpus_tag=params.corpus_tag, hub_data_dir=params.hub_data_dir)
            for t in resolve_task_ids(params.tasks, params.language)}


def task_shots(task, shots: list[int]) -> list[int]:
    """The shot counts that run for ``task``: all of ``shots``, or 0 alone for a zero-shot-only kind."""
    return [k for k in shots if k == 0] if task.kind in ZERO_SHOT_KINDS else list(shots)


def evaluate_models(params: EvaluateParams, tasks: list | None = None,
                    log=print) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Every model on every task with every number of shots.

    Returns (metric rows, per-item predictions, timings). Tasks are built once
    (or handed in, as ``build_tasks`` made them) and shared by all models, so
    every model answers the same prompts. Rows, predictions and timings name each
    model by its label (``labels``), or as given when there are none.
    """
    from lib.models import device_name, load_model_and_tokenizer, resolve_device
    from lib.speed import generation_speed, speed_prompts

    p = params
    models, shots, max_items = p.models, p.shots, p.max_items
    tasks = list(tasks if tasks is not None else build_tasks(p).values())
    for task in tasks:
        log(f"{task.id}: {task.n_available} {task.eval_split} items, evaluating "
            f"{min(task.n_available, max_items) if max_items else task.n_available}")
    rows: list[dict[str, Any]] = []
    predictions: list[dict[str, Any]] = []
    timings: dict[str, Any] = {"device": device_name(), "runs": [], "speed": []}
    prompts = speed_prompts(p.language, p.corpus_tag, p.speed_prompts) if p.speed_prompts else []
    for spec, name in zip(models, display_names(models, p.labels)):
        model, tokenizer = load_model_and_tokenizer(spec, dtype=p.dtype, device=resolve_device(p.device))
        speed: dict[str, Any] = {}
        if prompts:
            measured = generation_speed(model, tokenizer, prompts, new_tokens=p.speed_new_tokens)
            speed = {k: measured.summary()[k] for k in SPEED_COLUMNS}
            # the first continuations, to read beside the numbers (the demo prints them before/after)
            samples = [{"prompt": prompt, "continuation": text}
                       for prompt, text in zip(prompts[:SPEED_SAMPLES], measured.texts)]
            timings["speed"].append({"model": name, **measured.summary(), "samples": samples})
            log(f"{name}: {measured.chars_per_second:.1f} chars/s, {measured.tokens_per_second:.1f} tokens/s, "
                f"{measured.tokens_per_char:.3f} tokens/char ({measured.prompts} prompts x "
                f"{measured.new_tokens} new tokens, {measured.seconds:.1f} s)")
        first_row = len(rows)
        for task in tasks:
            if task_shots(task, shots) != list(shots):
                log(f"{task.id} is zero-shot only: shots {[k for k in shots if k]} skipped")
            for n_shot in task_shots(task, shots):
                start = time.perf_counter()
                task_rows, task_preds = evaluate_task(
                    model, tokenizer, task, n_shot, model_name=name, seed=p.seed, sampling=p.fewshot_sampling,
                    max_items=max_items, max_batch_tokens=p.max_batch_tokens, n_bootstrap=p.n_bootstrap)
                seconds = time.perf_counter() - start
                rows += task_rows
                predictions += task_preds
                n = task_rows[0]["n"]
                summary = ", ".join(f"{r['metric']} {r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
                                    for r in task_rows)
                log(f"{name} {task.id} {n_shot}-shot (n={n}): {summary}; chance "
                    f"{task_rows[0]['chance']:.3f}; {seconds:.1f} s ({n / seconds:.1f} items/s)")
                timings["runs"].append({"model": name, "task": task.id, "n_shot": n_shot, "n": n,
                                        "seconds": round(seconds, 2),
                                        "items_per_second": round(n / seconds, 2)})
        for row in rows[first_row:]:
            row.update(speed)
        del model
    return rows, predictions, timings


# ---------------------------------------------------------------- plots


def benchmarks_figure(results_dir: Path) -> Path:
    """Every model on every benchmark task: headline metric, CI and chance, per shot count."""
    from lib.plotting import read_table, save
    from lib.tasks.plots import plot_benchmarks

    table = read_table(results_dir, "benchmarks.csv")
    return save(plot_benchmarks(table), results_dir, "benchmarks")


FIGURES = {"benchmarks": benchmarks_figure}
