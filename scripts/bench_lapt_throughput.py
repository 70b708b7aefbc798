"""Training throughput and peak memory: our packed LAPT pipeline against a naive padded baseline.

Both pipelines train the same LoRA adapter (Curie settings) on the same model,
the same documents, the same batch size, precision and optimizer, in one process:

- packed (ours, ``lib.training``): TRL SFTTrainer, documents joined by the
  separator and cut into full ``block_size`` blocks; the LM head as
  ``lib.training.trainer.use_fused_lm_head`` picks for the device (TRL's fused
  head on a GPU, plain logits on a CPU);
- packed_fused: the same with TRL's fused LM head forced on (the CPU check of that choice);
- naive: transformers' Trainer, one document per sequence truncated to
  ``block_size``, each batch padded to its longest member, full logits.

Throughput counts real tokens (padding excluded) per second of optimizer
steps. The pipelines alternate in rounds, so a machine shared with other work
slows both alike; the first step of every round is warm-up and not timed. Peak
memory is the CUDA allocator's peak on a GPU; on a CPU the process's peak
resident set (VmHWM, reset before each round), minus the resident set at the
start of the round ("training overhead": both models stay loaded throughout).

    python scripts/bench_lapt_throughput.py                       # SmolLM2-135M, pl, 256-token blocks
    python scripts/bench_lapt_throughput.py --model tiny-random --rounds 2 --steps 2 --batch-size 4
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


PIPELINES = ("packed", "packed_fused", "naive")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_lapt_throughput.py", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--language", default="pl")
    parser.add_argument("--corpus-tag", default="default")
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two pipelines")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per pipeline and round")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", help="also write the result to this file")
    return parser.parse_args(argv)


def _rss_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


class Memory:
    """Peak memory of one round: CUDA allocator peak, or the process's peak RSS on a CPU."""

    def __init__(self, device: str):
        self.device = device

    def start(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS (Linux)
            self.base = _rss_kib("VmRSS") * 1024

    def stop(self) -> tuple[int, int]:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _rss_kib("VmHWM") * 1024
        return peak, peak - self.base


def step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Seconds and real tokens of every step after the first of each train() call."""

        def __init__(self):
            self.seconds = 0.0
            self.tokens = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.last = None

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            if self.last is not None:
                self.seconds += now - self.last[0]
                self.tokens += state.num_input_tokens_seen - self.last[1]
            self.last = (now, state.num_input_tokens_seen)

    return StepTimer()


def build(args):
    """The two trainers, each with its own copy of the base model and a fresh adapter."""
    import torch
    from peft import get_peft_model
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from lib.corpus.select import split_documents
    from lib.models import load_tokenizer, resolve_device
    from lib.training import data as D
    from lib.training import modes as M
    from lib.training.arguments import TrainSettings
    from lib.training.trainer import BpcTrainer, packed_text_arguments, use_fused_lm_head

    device = resolve_device(args.device)
    precision = M.resolve_precision(args.precision, device)
    tokenizer = load_tokenizer(args.model)
    texts, ids = split_documents(args.language, args.corpus_tag, "train")
    steps = args.steps + 1  # + the untimed first step of each round
    needed = steps * args.batch_size * args.block_size
    sequences, stats = D.training_sequences(tokenizer, texts, ids, max_tokens=needed * 2, seed=args.seed)
    if len(sequences) < steps * args.batch_size:
        raise SystemExit(f"only {len(sequences)} documents; the naive pipeline needs {steps * args.batch_size}")

    settings = TrainSettings(learning_rate=1e-3, num_epochs=1.0, max_steps=steps, batch_size=args.batch_size,
                             grad_accum=1, lr_scheduler="constant_with_warmup", warmup_ratio=0.0,
                             save_total_limit=0, log_steps=10_000, seed=args.seed)
    out = Path("/tmp") / f"bench_lapt_{int(time.time())}"

    timers = {name: step_timer() for name in PIPELINES}
    trainers = {}
    for name, fused in (("packed", use_fused_lm_head(device)), ("packed_fused", True)):
        trainable = M.load_trainable(args.model, "lora", lora={}, device=device, precision=precision)
        config = packed_text_arguments(settings, output_dir=out / name, block_size=args.block_size,
                                       precision=precision, device=device, eval_on_start=False)
        config.disable_tqdm = True
        trainers[name] = BpcTrainer(
            model=trainable.model, args=config, train_dataset=D.token_dataset(sequences),
            processing_class=tokenizer, peft_config=trainable.peft_config, callbacks=[timers[name]],
            bpc_texts=[], bpc_settings={}, fused_lm_head=fused)

    naive_model = get_peft_model(
        M.load_trainable(args.model, "lora", lora={}, device=device, precision=precision).model,
        trainable.peft_config)
    naive_docs = D.token_dataset([s[:args.block_size] for s in sequences])  # one document per sequence
    naive_args = TrainingArguments(
        output_dir=str(out / "naive"), per_device_train_batch_size=args.batch_size, learning_rate=1e-3,
        lr_scheduler_type="constant", max_steps=steps, bf16=precision == "bf16", use_cpu=device == "cpu",
        save_strategy="no", report_to=[], logging_steps=10_000, disable_tqdm=True, seed=args.seed,
        include_num_input_tokens_seen="non_padding", dataloader_num_workers=0)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    trainers["naive"] = Trainer(
        model=naive_model, args=naive_args, train_dataset=naive_docs, processing_class=tokenizer,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),  # pads; labels -100 on padding
        callbacks=[timers["naive"]])
    torch.manual_seed(args.seed)
    info = {"model": args.model, "language": args.language, "device": device, "precision": precision,
            "block_size": args.block_size, "batch_size": args.batch_size,
            "docs": len(sequences), "mean_doc_tokens": round(stats.n_tokens / len(sequences), 1),
            "naive_padding_free_fraction": round(
                sum(min(len(s), args.block_size) for s in sequences) / (len(sequences) * args.block_size), 3)}
    return trainers, timers, info


def main(argv=None) -> int:
    from lib.models import device_name

    args = parse_args(argv)
    trainers, timers, info = build(args)
    memory = Memory(info["device"])
    peaks = {name: [0, 0] for name in trainers}
    for round_ in range(args.rounds):
        for name, trainer in trainers.items():
            memory.start()
            trainer.train()
            peak, extra = memory.stop()
            peaks[name] = [max(peaks[name][0], peak), max(peaks[name][1], extra)]
            print(f"round {round_ + 1}/{args.rounds} {name}: {timers[name].tokens} tokens in "
                  f"{timers[name].seconds:.1f} s so far", file=sys.stderr)
    result = {**info, "device_name": device_name(), "rounds": args.rounds, "timed_steps": args.steps}
    for name in trainers:
        t = timers[name]
        result[name] = {"tokens": t.tokens, "seconds": round(t.seconds, 2),
                        "tokens_per_second": round(t.tokens / t.seconds, 1),
                        "peak_memory_mib": round(peaks[name][0] / 2**20),
                        "peak_training_overhead_mib": round(peaks[name][1] / 2**20)}
    result["throughput_ratio"] = round(result["packed"]["tokens_per_second"]
                                       / result["naive"]["tokens_per_second"], 2)
    print(f"{'pipeline':8s} {'tokens/s':>9s} {'peak MiB':>9s} {'overhead MiB':>13s}")
    for name in trainers:
        r = result[name]
        print(f"{name:8s} {r['tokens_per_second']:9.1f} {r['peak_memory_mib']:9d} "
              f"{r['peak_training_overhead_mib']:13d}")
    result["fused_head_ratio"] = round(result["packed_fused"]["tokens_per_second"]
                                       / result["packed"]["tokens_per_second"], 2)
    print(f"throughput ratio packed / naive: {result['throughput_ratio']:.2f} "
          f"({info['device']}, {info['precision']}, {info['model']})")
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
