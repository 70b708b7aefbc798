"""LoRA settings from a stage's parameters, and the one place a PEFT ``LoraConfig`` is built.

Every stage that trains an adapter names the same four parameters (``lora_r``,
``lora_alpha``, ``lora_dropout``, ``lora_target_modules``; None means Curie-7B's
value), so a parameter reaches PEFT in three hops: the notebook's parameters
cell -> ``lora_settings(params)`` -> ``lora_config(settings)`` -> ``LoraConfig``.
"""

from __future__ import annotations

from typing import Any

from lib.params import ParamsError, check_positive

# Curie-7B's LoRA settings (r=32, alpha=16, dropout 0.05) on every linear layer.
LORA_DEFAULTS: dict[str, Any] = {"r": 32, "alpha": 16, "dropout": 0.05, "target_modules": ["all-linear"]}
LORA_FIELDS = {"lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout",
               "lora_target_modules": "target_modules"}


def lora_settings(params, lora_modes: tuple[str, ...]) -> dict[str, Any] | None:
    """r, alpha, dropout, target_modules with the defaults filled in; None when ``params.mode``
    trains no adapter."""
    if params.mode not in lora_modes:
        return None
    return lora_values(params)


def lora_values(params) -> dict[str, Any]:
    """r, alpha, dropout, target_modules from the lora_* fields, None filled in with the default
    (for a stage whose every route that trains trains an adapter, such as 07's calibration)."""
    return {name: getattr(params, key) if getattr(params, key) is not None else LORA_DEFAULTS[name]
            for key, name in LORA_FIELDS.items()}


def check_lora_fields(params) -> None:
    """Sensible values for the lora_* fields that are set (None means the default)."""
    if params.lora_r is not None:
        check_positive("lora_r", params.lora_r)
    if params.lora_alpha is not None:
        check_positive("lora_alpha", params.lora_alpha)
    if params.lora_dropout is not None and not 0 <= params.lora_dropout < 1:
        raise ParamsError(f"lora_dropout must be in [0, 1), got {params.lora_dropout}")
    targets = params.lora_target_modules
    if targets is not None:
        if not targets:
            raise ParamsError("lora_target_modules must name at least one module (or all-linear)")
        if "all-linear" in targets and len(targets) > 1:
            raise ParamsError("lora_target_modules: 'all-linear' cannot be combined with other modules")


def lora_config(settings: dict[str, Any], *, task_type: str, modules_to_save: list[str] | None = None,
                ensure_weight_tying: bool = False):
    """PEFT's LoraConfig for ``settings`` (as ``lora_settings`` returns them)."""
    from peft import LoraConfig

    targets = settings["target_modules"]
    return LoraConfig(
        r=settings["r"], lora_alpha=settings["alpha"], lora_dropout=settings["dropout"],
        target_modules="all-linear" if list(targets) == ["all-linear"] else list(targets),
        bias="none", task_type=task_type, modules_to_save=modules_to_save,
        ensure_weight_tying=ensure_weight_tying,
    )
