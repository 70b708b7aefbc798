"""Benchmark tasks, zero- and few-shot: the building blocks of 08_evaluate and 06_task_tuning.

    base.py             Task, Item, PromptFormat, few-shot sampling from train only
    scoring.py          batched log-likelihood scoring: context once per item, few-shot prefix cached
    copy_task.py        the copy task (DaruCopy): verbatim-copy rule, chat or plain prompts, batched generation
    metrics.py          accuracy, acc_norm, macro-F1, exact match, chrF; bootstrap CI; chance
    offline.py          tasks built from the packaged data, split like the corpus
    hub.py              KLEJ, XCOPA, Belebele, Turkish sentiment with their upstream schemas
    harness.py          our models in lm-evaluation-harness (optional dependency)
    evaluation.py       one model on one task with k shots -> tidy rows (resolve and load tasks)
    plots.py            the benchmark dot plot (headline metric, CI, chance, majority)

Modules are imported one by one (``from lib.tasks.offline import ...``); this
package imports nothing heavy by itself.
"""
