"""Run a model on a task, zero- or few-shot, into tidy rows with chance and intervals.

Each row is one metric of one (model, task, n_shot): ``model, language, task,
n_shot, metric, value, n, ci_low, ci_high, chance`` plus ``majority`` (the
score of always giving the most frequent answer), ``n_available`` (items in
the task's evaluation split before the cap), ``max_items``, ``kind``,
``split``, the few-shot ``sampling`` and ``seed`` and the model's ``dtype`` (copy tasks add
``prompt_style``: ``chat`` or ``plain``, see ``lib.tasks.copy_task``). ``chance`` is the
expected score of uniform random guessing; the interval is a 95% percentile
bootstrap over items. Rows are deterministic
(same inputs, same rows); timings vary and are returned apart.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lib.tasks import metrics as M
from lib.tasks.base import CAP_SEED, Task, TaskError
from lib.tasks.copy_task import copy_outputs, copy_score, prompt_style
from lib.tasks.scoring import ChoiceRequest, generate, score_choices

DEFAULT_MAX_ITEMS = 500  # the documented cap per task: items above it are a fixed hashed subset
GENERATION_PROMPT_TOKENS = 256  # prompts per generation batch = max_batch_tokens // this
METRICS = {"multiple_choice": ("acc", "acc_norm"), "classification": ("acc", "macro_f1"),
           "generation": ("exact_match", "chrf"), "copy": ("copy_rate",)}


def resolve_task_ids(tasks: list[str], language: str) -> list[str]:
    """``offline`` -> every offline task of ``language``; a family name -> that family in
    ``language``; ``family:lang`` as is. Unknown names raise before any model loads."""
    from lib.tasks import hub, offline

    out: list[str] = []
    for spec in tasks:
        if spec == "offline":
            ids = offline.offline_task_ids(language)
        elif spec == "hub":
            ids = hub.hub_task_ids(language)
        elif ":" in spec:
            ids = [spec]
        else:
            ids = [f"{spec}:{language}"]
        for task_id in ids:
            family, _, lang = task_id.partition(":")
            known = offline.OFFLINE.get(family) or hub.HUB.get(family)
            if known is None:
                raise TaskError(f"unknown task {family!r}; offline: {', '.join(offline.OFFLINE)}; "
                                f"hub: {', '.join(hub.HUB)}")
            if lang not in known.languages:
                raise TaskError(f"task {family!r} exists for {', '.join(known.languages)}, not {lang!r}")
            if task_id not in out:
                out.append(task_id)
    if not out:
        raise TaskError(f"no task matches {tasks} for language {language!r}")
    return out


def load_task(task_id: str, *, corpus_tag: str = "default", hub_data_dir: str = "") -> Task:
    from lib.tasks import hub, offline

    family, _, language = task_id.partition(":")
    if family in offline.OFFLINE:
        return offline.build_offline_task(family, language, corpus_tag=corpus_tag)
    return hub.build_hub_task(family, language, data_dir=hub_data_dir)


def evaluate_task(model, tokenizer, task: Task, n_shot: int, *, model_name: str, seed: int = 1234,
                  sampling: str = "shared", max_items: int = DEFAULT_MAX_ITEMS, max_batch_tokens: int = 4096,
                  n_bootstrap: int = 1000) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Score one model on one task with ``n_shot`` examples: (metric rows, per-item predictions)."""
    items = task.eval_items(max_items, seed=CAP_SEED)
    common = {"model": model_name, "language": task.language, "task": task.name, "n_shot": n_shot,
              "n": len(items), "n_available": task.n_available, "max_items": max_items,
              "kind": task.kind, "split": task.eval_split, "sampling": sampling, "seed": seed,
              "dtype": str(next(model.parameters()).dtype).removeprefix("torch.")}
    if task.kind == "copy":
        common["prompt_style"] = prompt_style(tokenizer)
    if not items:  # the data allow no item (e.g. a tiny corpus): the table says so with n = 0
        nan = math.nan
        return [common | {"metric": m, "value": nan, "ci_low": nan, "ci_high": nan, "chance": nan,
                          "majority": nan} for m in METRICS[task.kind]], []
    prompts = task.prompts(items, n_shot, seed=seed, sampling=sampling)
    values: list[tuple[str, float, tuple[float, float], float, float]] = []  # (metric, value, ci,
    # chance, majority)
    if task.kind == "copy":
        refs = [item.target for item in items]
        # the answer prefix without its trailing space is the plain prompt's cue (the model writes
        # the space itself, as the first token of the answer)
        outputs, _ = copy_outputs(model, tokenizer, [p + q for p, q in prompts], refs,
                                  cue=task.prompt.answer_prefix.rstrip(" "), max_batch_tokens=max_batch_tokens)
        hits = [copy_score(o, r) for o, r in zip(outputs, refs)]
        values.append(("copy_rate", float(np.mean(hits)), M.mean_ci(hits, n_resamples=n_bootstrap), math.nan,
                       math.nan))
        predictions = [{"item": i.id, "reference": r, "output": o, "copied": h}
                       for i, r, o, h in zip(items, refs, outputs, hits)]
    elif task.kind == "generation":
        outputs = generate(model, tokenizer, [p + q for p, q in prompts],
                           max_new_tokens=task.max_new_tokens,
                           batch_size=max(1, max_batch_tokens // GENERATION_PROMPT_TOKENS))
        refs = [item.target for item in items]
        hits = [float(M.normalise_answer(r) == M.normalise_answer(o)) for r, o in zip(refs, outputs)]
        values.append(("exact_match", M.exact_match(refs, outputs),
                       M.mean_ci(hits, n_resamples=n_bootstrap), math.nan, math.nan))
        values.append(("chrf", M.chrf(refs, outputs),
                       M.bootstrap_ci(M.chrf, refs, outputs, n_resamples=min(n_bootstrap, 200)), math.nan,
                       math.nan))
        predictions = [{"item": i.id, "reference": r, "output": o} for i, r, o in zip(items, refs, outputs)]
    else:
        options = [task.options(item) for item in items]
        requests = [ChoiceRequest(query, tuple(task.prompt.answer(o) for o in opts), prefix)
                    for (prefix, query), opts in zip(prompts, options)]
        scores = score_choices(model, tokenizer, requests, max_batch_tokens=max_batch_tokens)
        pred, pred_norm = M.choice_predictions(scores, options)
        labels = np.array([item.label for item in items])
        chance = M.chance_accuracy([len(o) for o in options])
        # the constant answer "the most frequent label" (the majority class; for word senses
        # the first, most frequent sense): a baseline that imbalanced labels make strong
        constant = np.full_like(labels, np.bincount(labels).argmax())
        values.append(("acc", M.accuracy(labels, pred), M.mean_ci(pred == labels, n_resamples=n_bootstrap),
                       chance, M.accuracy(labels, constant)))
        if task.kind == "multiple_choice":
            values.append(("acc_norm", M.accuracy(labels, pred_norm),
                           M.mean_ci(pred_norm == labels, n_resamples=n_bootstrap), chance,
                           M.accuracy(labels, constant)))
        else:
            names = np.array(task.classes)
            values.append(("macro_f1", M.macro_f1(names[labels], names[pred]),
                           M.bootstrap_ci(M.macro_f1, names[labels], names[pred], n_resamples=n_bootstrap),
                           M.chance_macro_f1(names[labels], task.classes),
                           M.macro_f1(names[labels], names[constant])))
        predictions = [{"item": i.id, "label": int(lab), "pred": int(p), "pred_norm": int(pn),
                        "logprobs": [round(s.logprob, 4) for s in sc]}
                       for i, lab, p, pn, sc in zip(items, labels, pred, pred_norm, scores)]
    rows = [common | {"metric": name, "value": value, "ci_low": ci[0], "ci_high": ci[1], "chance": chance,
                      "majority": majority}
            for name, value, ci, chance, majority in values]
    for p in predictions:
        p.update(model=model_name, language=task.language, task=task.name, n_shot=n_shot)
    return rows, predictions
