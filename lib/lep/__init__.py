"""Learned Embedding Propagation (LEP) building blocks, for ``07_lep_propagate``.

    from lib.lep import propagate
    model, tokenizer, report = propagate(base, instruct, donor, base_tok, donor_tok, instruct_tok,
                                         mode="conversion")
    save_checkpoint(model, tokenizer, run_dir / "model", report.as_dict())

Below every stage: imports no stage module. See ``lib.lep.propagation`` for the method, and
``lib.lep.calibration`` for self-calibration (the result tuned on the instruct model's own answers).
"""

from lib.lep.propagation import (
    DEFAULT_MODE,
    MODES,
    Fit,
    FitContext,
    LepError,
    LepReport,
    MatrixReport,
    check_compatible,
    check_donor,
    check_tokenizers,
    instruct_tokens,
    least_squares,
    mode,
    output_tokenizer,
    propagate,
)

__all__ = [
    "DEFAULT_MODE", "MODES", "Fit", "FitContext", "LepError", "LepReport", "MatrixReport", "check_compatible",
    "check_donor", "check_tokenizers", "instruct_tokens", "least_squares", "mode", "output_tokenizer", "propagate",
]
