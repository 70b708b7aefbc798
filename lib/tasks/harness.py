"""Bridge to lm-evaluation-harness: evaluate our models on any of its tasks.

``lm_eval`` is imported only when the bridge is used. The model class
``langadapt`` (registered with lm-eval's model registry on first use) is
lm-eval's own Hugging Face wrapper, fed with our model loading: registry
names, run directories, local checkpoints and hub ids resolve as everywhere
else in this project. Prompts and tokenisation stay lm-eval's, so numbers
compare with published harness results: a context is encoded as is, and only
empty contexts and rolling log-likelihoods start from the document prefix
token of our scorers (``lib.lm_metrics.document_prefix_ids``), where our own
``lib.tasks.scoring`` always puts that token first.

Rolling log-likelihoods (perplexity tasks: ``bits_per_byte``...) split a text into
disjoint windows of ``max_length`` tokens (default: the model's context), each
seeing the ``max_length`` tokens before its last target; that is ``eval-lm``'s
scoring with ``--stride`` equal to ``--max-length``, so with the same two numbers
the two commands give the same bits per byte (``eval-lm``'s default stride of half
a window gives later windows more context, and so a slightly different, usually
lower, number on texts longer than one window).

    from lib.tasks import harness
    results = harness.evaluate("smollm2-135m-instruct", ["xcopa_tr", "belebele_tur_Latn"],
                               num_fewshot=0)
    harness.rows(results, "smollm2-135m-instruct")

From the shell, once registered: ``lm_eval --model langadapt --model_args
pretrained=smollm2-135m-instruct --tasks xcopa_tr`` needs the registration
to have run in that process; use ``evaluate`` (or ``python -m lib.tasks.harness``).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

MODEL_NAME = "langadapt"
_INSTALL_HINT = ("lm-evaluation-harness is not installed; it is part of the pinned environment "
                 "(requirements.txt: lm-eval==0.4.13): run `make setup`")
_CLASS = None


class HarnessMissing(ImportError):
    pass


def _import_lm_eval():
    try:
        import lm_eval  # noqa: F401
        from lm_eval.api.registry import register_model
        from lm_eval.models.huggingface import HFLM
    except ImportError as exc:
        raise HarnessMissing(_INSTALL_HINT) from exc
    return register_model, HFLM


def lm_class():
    """The registered ``langadapt`` LM class (defined and registered once)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    register_model, HFLM = _import_lm_eval()

    class LangAdaptLM(HFLM):
        """lm-eval's HFLM around a model loaded by ``lib.models`` (any of our model specs)."""

        def __init__(self, pretrained: str, dtype: str = "float32", device: str = "auto", **kwargs):
            from lib.lm_metrics import document_prefix_ids
            from lib.models import load_model_and_tokenizer, resolve_device

            where = resolve_device(device or "auto")
            model, tokenizer = load_model_and_tokenizer(str(pretrained), dtype=dtype, device=where)
            kwargs.setdefault("prefix_token_id", document_prefix_ids(tokenizer)[0])
            super().__init__(pretrained=model, tokenizer=tokenizer, device=where, **kwargs)
            self.spec = str(pretrained)

    try:
        _CLASS = register_model(MODEL_NAME)(LangAdaptLM)
    except ValueError:  # registered by an earlier import of this module in the same process
        from lm_eval.api.registry import get_model

        _CLASS = get_model(MODEL_NAME)
    return _CLASS


def make_lm(model: str, *, dtype: str = "float32", device: str = "auto", batch_size: int = 8,
            max_length: int | None = None):
    """``max_length``: tokens per window (default: lm-eval's, from the model's context)."""
    extra = {"max_length": max_length} if max_length is not None else {}
    return lm_class()(model, dtype=dtype, device=device, batch_size=batch_size, **extra)


def evaluate(model: str, tasks: list[str], *, num_fewshot: int = 0, limit: int | float | None = None,
             batch_size: int = 8, dtype: str = "float32", device: str = "auto",
             include_path: str | None = None, include_defaults: bool = True,
             bootstrap_iters: int = 1000, seed: int = 1234,
             max_length: int | None = None) -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` with our model; returns its results dictionary.

    ``include_path`` adds a directory of task YAML files (local tasks, e.g. the
    tests' fixtures); ``include_defaults=False`` skips indexing lm-eval's own
    thousands of tasks when only those are needed. ``max_length``: see ``make_lm``.
    """
    _import_lm_eval()
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_path, include_defaults=include_defaults)
    return simple_evaluate(
        model=make_lm(model, dtype=dtype, device=device, batch_size=batch_size, max_length=max_length),
        tasks=list(tasks),
        num_fewshot=num_fewshot, limit=limit, task_manager=manager, bootstrap_iters=bootstrap_iters,
        log_samples=False, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
        fewshot_random_seed=seed,
    )


def rows(results: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """Tidy rows (model, task, n_shot, metric, value, stderr, n) from lm-eval's results."""
    out = []
    n_shot = results.get("n-shot", {})
    samples = results.get("n-samples", {})
    for task, metrics in sorted(results.get("results", {}).items()):
        for key, value in sorted(metrics.items()):
            metric, _, filt = key.partition(",")
            if (not filt or metric.endswith("_stderr") or metric == "alias"
                    or not isinstance(value, (int, float))):
                continue
            stderr = metrics.get(f"{metric}_stderr,{filt}")
            out.append({
                "model": model, "task": task, "n_shot": n_shot.get(task), "metric": metric,
                "filter": filt, "value": float(value),
                "stderr": float(stderr) if isinstance(stderr, (int, float)) and not math.isnan(stderr) else None,
                "n": (samples.get(task) or {}).get("effective"), "source": "lm-evaluation-harness",
            })
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.tasks.harness",
                                     description="Run lm-evaluation-harness tasks on one of our models.")
    parser.add_argument("--model", required=True, help="registry name, run directory, path or hub id")
    parser.add_argument("--tasks", required=True, help="comma-separated lm-eval task names")
    parser.add_argument("--num-fewshot", type=int, default=0)
    parser.add_argument("--limit", type=float)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--include-path")
    parser.add_argument("--max-length", type=int,
                        help="tokens per window (default: the model's context)")
    args = parser.parse_args(argv)
    results = evaluate(args.model, args.tasks.split(","), num_fewshot=args.num_fewshot,
                       limit=int(args.limit) if args.limit and args.limit >= 1 else args.limit,
                       batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                       include_path=args.include_path, max_length=args.max_length)
    print(json.dumps(rows(results, args.model), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
