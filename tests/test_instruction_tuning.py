"""05_instruction_tuning on a tiny Turkish corpus with the tiny model (in process)."""

from __future__ import annotations

import pytest

from lib import stages
from lib.stages import instruction_tuning as IT

TAG = "it-test"


@pytest.fixture(scope="module")
def tiny_tr(isolated_home):
    from lib.corpus import build_corpus

    build_corpus("tr", tag=TAG, sources=["libreoffice", "wordnet", "manpages"], max_docs_per_source=60,
                 test_fraction=0.2, validation_fraction=0.1, min_chars=100, tokenizers=["tiny-random"])
    return TAG


def quiet(*_args, **_kwargs):
    pass


@pytest.mark.slow
def test_instruction_tuning_end_to_end(tiny_tr, tmp_path):
    params = stages.resolve("05_instruction_tuning", profile="tiny", overrides={"corpus_tag": TAG, "data_tag": TAG})
    setup = IT.prepare(params, tmp_path, log=quiet)
    assert len(setup.train_dataset) > 0 and len(setup.heldout_dataset) > 0
    assert setup.base_model == "tiny-random"
    first = setup.train_dataset[0]
    assert first["prompt"][-1]["role"] == "user" and first["completion"][0]["role"] == "assistant"

    trainer = IT.make_trainer(setup)
    # the loss is on the answer only: every labelled token lies after the prompt
    labels = trainer.train_dataset[0]["labels"]
    masked = [label == -100 for label in labels]
    assert any(masked) and not all(masked)
    assert masked == sorted(masked, reverse=True)  # the prompt (masked) first, then the answer
    before, before_answers = IT.heldout_scores(setup, trainer, stage="before", log=quiet)
    outcome = IT.train(setup, trainer, log=quiet)
    assert outcome.train_metrics["global_step"] == params.max_steps
    after, after_answers, model_dir = IT.finish(setup, outcome, log=quiet)
    assert (model_dir / "config.json").is_file() and (model_dir / "tokenizer_config.json").is_file()
    metrics = {(r["stage"], r["metric"]): r["value"] for r in before + after}
    assert set(metrics) == {(s, m) for s in ("before", "after")
                            for m in ("completion_loss", "completion_perplexity", "chrf")}
    # lr 0.01 on a random model: the held-out answer loss falls
    assert metrics[("after", "completion_loss")] < metrics[("before", "completion_loss")]
    assert len(before_answers) == len(after_answers) == len(setup.heldout_dataset)
    samples = IT.samples_table(setup, before_answers, after_answers)
    assert list(samples.columns) == ["prompt", "reference", "before", "after"]
    assert len(samples) == params.n_samples


def test_a_base_model_without_chat_template_needs_chatml():
    from lib.training import TrainingSetupError
    from lib.training.sft import ensure_chat_template

    class Tok:
        chat_template = None

    tok = Tok()
    with pytest.raises(TrainingSetupError, match="no chat template"):
        ensure_chat_template(tok, "model")
    assert ensure_chat_template(tok, "chatml") == "chatml"
    assert "<|im_start|>" in tok.chat_template


def test_packing_only_with_flash_attention():
    from types import SimpleNamespace

    from lib.training import TrainingSetupError
    from lib.training.sft import use_packing

    sdpa = SimpleNamespace(config=SimpleNamespace(_attn_implementation="sdpa"))
    flash = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    assert not use_packing("auto", sdpa) and use_packing("auto", flash)
    assert not use_packing("false", flash)
    with pytest.raises(TrainingSetupError, match="FlashAttention"):
        use_packing("true", sdpa)


@pytest.mark.slow
def test_lora_embeddings_moves_the_embeddings_and_merges_the_layers(tiny_tr, tmp_path):
    """The mode LEP's T is made with: the exported checkpoint has new embeddings (and head, tied or
    not, as the base had it) and LoRA-merged layers, and lora_* fields apply to it."""
    import torch
    from transformers import AutoModelForCausalLM

    from lib.models import resolve

    params = stages.resolve("05_instruction_tuning", profile="tiny", overrides={
        "corpus_tag": TAG, "data_tag": TAG, "mode": "lora_embeddings", "lora_r": 4, "max_steps": 3})
    assert params.lora_settings()["r"] == 4
    setup = IT.prepare(params, tmp_path, log=quiet)
    trainer = IT.make_trainer(setup)
    outcome = IT.train(setup, trainer, log=quiet)
    _, _, model_dir = IT.finish(setup, outcome, log=quiet)
    base = AutoModelForCausalLM.from_pretrained(resolve(params.model), dtype=torch.float32)
    tuned = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    assert not torch.equal(tuned.get_input_embeddings().weight, base.get_input_embeddings().weight)
    assert tuned.config.tie_word_embeddings == base.config.tie_word_embeddings
    if base.config.tie_word_embeddings:
        assert tuned.get_output_embeddings().weight.data_ptr() == tuned.get_input_embeddings().weight.data_ptr()
    base_layers, tuned_layers = base.model.layers.state_dict(), tuned.model.layers.state_dict()
    assert any(not torch.equal(tuned_layers[k], base_layers[k]) for k in base_layers if k.endswith("proj.weight"))
    assert all(torch.equal(tuned_layers[k], base_layers[k]) for k in base_layers if "norm" in k)
