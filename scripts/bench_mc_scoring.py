"""Items per second of multiple-choice scoring: packed (context once per item, few-shot
prefix cached once) against naive per-option scoring, same model, task and items, one run.

    python scripts/bench_mc_scoring.py                  # SmolLM2; pl translation and topic, 0/3-shot
    python scripts/bench_mc_scoring.py --model gemma3-270m --task topic_classification:ru --shots 0 3
    python scripts/bench_mc_scoring.py --all --items 24  # every offline multiple-choice task

Columns (items per second): ``packed`` is lib.tasks.scoring.score_choices; ``naive``
scores every (item, option) as its own sequence, batched with the same token budget
per forward pass (so the ratio isolates the reuse of the context and of the few-shot
prefix); ``one-by-one`` is naive scoring with one sequence per forward pass, without
batching either. All tokenise identically; the script checks that packed and naive
agree and prints one line per (task, shots), an items-weighted total and a JSON
summary. The scorers are timed alternately so that load from other processes hits
them alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.models import load_model_and_tokenizer  # noqa: E402
from lib.tasks.base import CAP_SEED  # noqa: E402
from lib.tasks.evaluation import load_task  # noqa: E402
from lib.tasks.offline import offline_task_ids  # noqa: E402
from lib.tasks.scoring import ChoiceRequest, score_choices, score_choices_naive  # noqa: E402

DEFAULT_TASKS = ["translation_choice_from_en:pl", "topic_classification:pl"]


def requests_for(task, n_items: int, n_shot: int, seed: int) -> list[ChoiceRequest]:
    items = task.eval_items(n_items, seed=CAP_SEED)
    prompts = task.prompts(items, n_shot, seed=seed)
    return [ChoiceRequest(query, tuple(task.prompt.answer(o) for o in task.options(item)), prefix)
            for (prefix, query), item in zip(prompts, items)]


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--task", action="append", help="task id, e.g. translation_choice_from_en:pl "
                        f"(repeatable; default: {' '.join(DEFAULT_TASKS)})")
    parser.add_argument("--all", action="store_true", help="every offline task scored by log-likelihood")
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 3])
    parser.add_argument("--items", type=int, default=48, help="items per measurement")
    parser.add_argument("--max-batch-tokens", type=int, default=4096, help="tokens per forward pass, both scorers")
    parser.add_argument("--repeats", type=int, default=1, help="alternating timings of each scorer")
    parser.add_argument("--corpus-tag", default="default")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16 (AVX512-BF16 on this CPU)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--skip-one-by-one", action="store_true",
                        help="do not time naive scoring with one sequence per forward pass")
    args = parser.parse_args(argv)

    import torch

    model, tokenizer = load_model_and_tokenizer(args.model, dtype=args.dtype)
    summary = {"model": args.model, "dtype": args.dtype, "threads": torch.get_num_threads(),
               "max_batch_tokens": args.max_batch_tokens, "results": []}
    print(f"model {args.model} ({args.dtype}), {torch.get_num_threads()} threads, "
          f"{args.max_batch_tokens} tokens per pass")
    print(f"{'task':36s} {'shots':>5s} {'items':>5s} {'packed':>8s} {'naive':>8s} {'speed-up':>8s} "
          f"{'one-by-one':>10s} {'speed-up':>8s} {'max |dlogp|':>11s}   (items per second)")
    task_ids = args.task or DEFAULT_TASKS
    if args.all:
        task_ids = [t for t in offline_task_ids() if not t.startswith("definition_to_word_gen")]
    for task_id in task_ids:
        task = load_task(task_id, corpus_tag=args.corpus_tag)
        if task.kind == "generation":
            raise SystemExit(f"{task_id} is a generation task: nothing to compare")
        for n_shot in args.shots:
            requests = requests_for(task, args.items, n_shot, args.seed)
            score_choices(model, tokenizer, requests[:2], max_batch_tokens=args.max_batch_tokens)  # warm-up
            seconds = {"packed": [], "naive": [], "one_by_one": []}
            for _ in range(args.repeats):
                packed, t = timed(score_choices, model, tokenizer, requests,
                                  max_batch_tokens=args.max_batch_tokens)
                seconds["packed"].append(t)
                naive, t = timed(score_choices_naive, model, tokenizer, requests,
                                 max_batch_tokens=args.max_batch_tokens)
                seconds["naive"].append(t)
                if not args.skip_one_by_one:
                    _, t = timed(score_choices_naive, model, tokenizer, requests, max_batch_tokens=1)
                    seconds["one_by_one"].append(t)
            diff = max(abs(a.logprob - b.logprob) for pa, pb in zip(packed, naive) for a, b in zip(pa, pb))
            rate = {k: len(requests) / min(v) for k, v in seconds.items() if v}
            one = (f"{rate['one_by_one']:10.2f} {rate['packed'] / rate['one_by_one']:7.2f}x"
                   if "one_by_one" in rate else f"{'-':>10s} {'-':>8s}")
            print(f"{task_id:36s} {n_shot:5d} {len(requests):5d} {rate['packed']:8.2f} {rate['naive']:8.2f} "
                  f"{rate['packed'] / rate['naive']:7.2f}x {one} {diff:11.2e}", flush=True)
            summary["results"].append({
                "task": task_id, "n_shot": n_shot, "items": len(requests), "max_abs_logprob_diff": diff,
                **{f"{k}_items_per_second": round(v, 3) for k, v in rate.items()},
                **{f"{k}_seconds": [round(x, 2) for x in v] for k, v in seconds.items() if v},
            })
    results = summary["results"]
    items = sum(r["items"] for r in results)
    totals = {k: sum(min(r[f"{k}_seconds"]) for r in results) for k in ("packed", "naive", "one_by_one")
              if all(f"{k}_seconds" in r for r in results)}
    summary["overall"] = {"items": items, **{f"{k}_items_per_second": round(items / v, 3)
                                             for k, v in totals.items()},
                          "speedup_vs_naive": round(totals["naive"] / totals["packed"], 3)}
    one = ""
    if "one_by_one" in totals:
        summary["overall"]["speedup_vs_one_by_one"] = round(totals["one_by_one"] / totals["packed"], 3)
        one = f"{items / totals['one_by_one']:10.2f} {totals['one_by_one'] / totals['packed']:7.2f}x"
    print(f"{'all of the above (items-weighted)':36s} {'':5s} {items:5d} {items / totals['packed']:8.2f} "
          f"{items / totals['naive']:8.2f} {totals['naive'] / totals['packed']:7.2f}x {one}")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
