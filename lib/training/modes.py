"""Which weights train: LoRA, QLoRA, LoRA + embeddings, embeddings only, full.

Everything here runs before the first optimizer step, so a bad combination
(QLoRA without a GPU, a target module the model does not have) fails in
seconds with a message, never after an hour of training. After training,
``export_checkpoint`` writes a standalone Hugging Face checkpoint (adapter
merged) that later stages load like any other model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.training import TrainingSetupError

MODES = ("lora", "qlora", "lora_embeddings", "embeddings", "new_tokens", "full")  # 03_lapt
LORA_MODES = ("lora", "qlora", "lora_embeddings")
TUNING_MODES = ("lora", "full")  # 06 and the classifier
# 05 also trains LoRA with the embeddings and head in full: LEP's instruct model T made from a base
# needs embeddings that moved (plain LoRA leaves them the base's) and layers that moved little
INSTRUCTION_MODES = ("lora", "lora_embeddings", "full")


def cpu_supports_bf16() -> bool:
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, device: str) -> str:
    """'bf16' or 'fp32': auto is bf16 where the hardware does it natively
    (a CUDA GPU with bf16, a CPU with AVX512-BF16/AMX), else fp32."""
    import torch

    if precision == "fp32":
        return "fp32"
    supported = torch.cuda.is_bf16_supported() if device == "cuda" else cpu_supports_bf16()
    if precision == "bf16" and not supported:
        raise TrainingSetupError(f"precision bf16 was asked for but this {device} does not support bfloat16; "
                                 "use precision=fp32 (or auto)")
    return "bf16" if supported else "fp32"


def check_hardware(mode: str, device: str) -> None:
    """QLoRA needs bitsandbytes' 4-bit CUDA kernels; say so instead of crashing inside them."""
    if mode != "qlora":
        return
    if device != "cuda":
        raise TrainingSetupError(
            "mode=qlora quantizes the base model to 4-bit NF4 with bitsandbytes, which needs a CUDA GPU; "
            f"this run's device is {device!r}. On a CPU use mode=lora (same adapter, unquantized base).")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise TrainingSetupError("mode=qlora needs the bitsandbytes package (pip install bitsandbytes)") from exc


@dataclass
class TrainableModel:
    """A model ready for the trainer: PEFT modes carry their config, which SFTTrainer applies."""

    model: Any
    mode: str
    peft_config: Any = None
    tied_embeddings: bool = False
    notes: list[str] = field(default_factory=list)


def tied_embeddings(model) -> bool:
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def _module_name(model, module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise TrainingSetupError(f"cannot find {type(module).__name__} in the model")


def check_target_modules(model, targets: list[str]) -> None:
    """Every target names at least one module; the output head is not a LoRA target."""
    import torch.nn as nn

    head = model.get_output_embeddings()
    head_name = _module_name(model, head).split(".")[-1] if head is not None else None
    if head_name and head_name in targets:
        raise TrainingSetupError(
            f"target module {head_name!r} is the output head: TRL computes log-probabilities from its weight "
            "directly, so a LoRA adapter there would never train; use mode=lora_embeddings to train the "
            "embeddings and the output head fully")
    if targets == ["all-linear"]:
        return
    if "all-linear" in targets:
        raise TrainingSetupError("'all-linear' cannot be combined with other target modules")
    names = [name for name, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        linear = sorted({n.split(".")[-1] for n, m in model.named_modules()
                         if isinstance(m, nn.Linear) and m is not head})
        raise TrainingSetupError(
            f"LoRA target module(s) {', '.join(missing)} not found in the model; its linear layers are: "
            f"{', '.join(linear)} (or use all-linear)")


def load_trainable(model_spec: str, mode: str, *, lora: dict[str, Any] | None, device: str,
                   precision: str, gradient_checkpointing: bool = False,
                   token_indices: list[int] | None = None) -> TrainableModel:
    """Load ``model_spec`` and make the weights of ``mode`` trainable.

    ``new_tokens`` trains only the rows ``token_indices`` of the input embeddings and the output
    head: embeddings-only training whose gradient is zero on every other row, so with AdamW and no
    weight decay those rows keep their values bit for bit and what the model knew of the old
    vocabulary (English) cannot move. (PEFT's TrainableTokens would be the library route, but TRL's
    SFTTrainer refuses any adapter on a tied output head.)

    The base stays in float32 (master weights for mixed precision) except where
    it is frozen on a GPU: LoRA modes load it in bfloat16, QLoRA in 4-bit NF4.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from lib.models import check_causal_lm, resolve

    if mode not in MODES:
        raise TrainingSetupError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    check_hardware(mode, device)
    source = resolve(model_spec)
    check_causal_lm(source, model_spec)
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if mode == "qlora":
        from accelerate import PartialState
        from transformers import BitsAndBytesConfig

        kwargs = {
            "dtype": torch.bfloat16,
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16),
            "device_map": {"": PartialState().local_process_index},  # one full copy per process
        }
    elif mode in LORA_MODES and device == "cuda" and precision == "bf16":
        kwargs["dtype"] = torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    tied = tied_embeddings(model)
    result = TrainableModel(model=model, mode=mode, tied_embeddings=tied)

    if mode in LORA_MODES:
        from lib.training.lora import LORA_DEFAULTS, lora_config

        settings = {**LORA_DEFAULTS, **(lora or {})}
        check_target_modules(model, settings["target_modules"])
        to_save = None
        if mode == "lora_embeddings":
            to_save = [_module_name(model, model.get_input_embeddings()).split(".")[-1]]
            if not tied:
                to_save.append(_module_name(model, model.get_output_embeddings()).split(".")[-1])
            result.notes.append("embeddings and output head trained fully"
                                + (" (tied: one shared matrix)" if tied else ""))
        if mode == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
            result.model = model
        # With tied embeddings the trained copy of embed_tokens must stay the output head too.
        result.peft_config = lora_config(settings, task_type="CAUSAL_LM", modules_to_save=to_save,
                                         ensure_weight_tying=bool(to_save) and tied)
    elif mode in ("embeddings", "new_tokens"):
        for param in model.parameters():
            param.requires_grad_(False)
        weights = [model.get_input_embeddings().weight]
        if not tied:
            weights.append(model.get_output_embeddings().weight)
        for weight in weights:
            weight.requires_grad_(True)
        what = "input embeddings and output head only"
        if mode == "new_tokens":
            for weight in weights:
                _train_rows_only(weight, token_indices)
            what = f"only the {len(token_indices):,} new tokens' rows of the input embeddings and output head"
        result.notes.append(what + (" (tied: one shared matrix)" if tied else ""))
    else:  # full
        for param in model.parameters():
            param.requires_grad_(True)
    return result


def _train_rows_only(weight, rows: list[int] | None) -> None:
    """Zero the gradient of every row of ``weight`` but ``rows`` (a tied matrix gets one hook, on its
    summed gradient)."""
    import torch

    if not rows:
        raise TrainingSetupError("mode new_tokens needs the ids of the rows to train (the tokens a vocabulary "
                                 "change added); none were given")
    if max(rows) >= weight.shape[0] or min(rows) < 0:
        raise TrainingSetupError(f"token ids {min(rows)}..{max(rows)} do not fit the {weight.shape[0]} embedding rows")
    mask = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
    mask[torch.tensor(sorted(rows), device=weight.device)] = 1
    weight.register_hook(lambda grad: grad * mask.to(grad.dtype))


def parameter_counts(model) -> dict[str, Any]:
    """Trainable and total parameters, each shared tensor counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        n = param.numel() * (2 if param.__class__.__name__ == "Params4bit" else 1)  # 4-bit: 2 per byte
        total += n
        trainable += n if param.requires_grad else 0
    return {"trainable_params": trainable, "total_params": total,
            "trainable_fraction": trainable / total if total else 0.0}


def export_checkpoint(trained_model, *, base_spec: str, mode: str, adapter_dir: Path | None,
                      out_dir: Path, tokenizer, provenance: dict[str, Any]) -> Path:
    """A standalone checkpoint in ``out_dir``: adapter merged into a float32 copy of the base.

    PEFT modes reload the unquantized base in float32 and merge the saved adapter
    into it (for QLoRA this is the usual merge into the de-quantized base);
    embeddings-only and full modes save the trained model itself.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from lib.models import resolve

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if mode in LORA_MODES:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(resolve(base_spec), dtype=torch.float32)
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    else:
        merged = trained_model
    merged.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "provenance.json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False) + "\n")
    return out_dir
