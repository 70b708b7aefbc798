"""04_vocab_adapt as a user meets it: parameters, and a tiny run chained into 03_lapt."""

from __future__ import annotations

import json

import pytest

from lib import params as P
from lib import stages
from lib.stages import vocab_adapt as VA


@pytest.mark.parametrize(("overrides", "message"), [
    ({"strategy": "extension", "target_size": 60000}, "target_size cannot change what runs for strategy 'extension'"),
    ({"strategy": "bpe", "n_tokens": 10}, "n_tokens cannot change"),
    ({"strategy": "unigram", "min_frequency": 3}, "min_frequency cannot change"),
    ({"strategy": "bpe", "init": "mean_resize"}, "mean_resize needs a strategy that appends"),
    ({"init": "zeros"}, "init must be one of"),
    ({"strategy": "sentencepiece"}, "strategy must be one of"),
    ({"model": "mistral-7b-v0.1", "init": "random"}, "init cannot change what runs"),
    ({"language": "en"}, "unknown language 'en'"),
])
def test_bad_parameters_are_named(overrides, message):
    with pytest.raises(P.ParamsError, match=message):
        stages.resolve(VA.STAGE, overrides=overrides)


def test_strategy_parameters_reach_the_strategy():
    p = stages.resolve(VA.STAGE, overrides={"strategy": "optimization", "vocab_size": 4000, "target_size": 52000})
    assert p.strategy_kwargs() == {"vocab_size": 4000, "target_size": 52000}
    assert stages.resolve(VA.STAGE, overrides={"strategy": "add_tokens", "n_tokens": 50}).strategy_kwargs() == \
        {"n_tokens": 50}
    # a profile's strategy size for another strategy goes back to its default
    assert stages.resolve(VA.STAGE, profile="tiny", overrides={"strategy": "extension"}).target_size == 0


def _vocab_then_lapt(tmp_path, lapt_params: str):
    """A tiny 04 run (SmolLM2's tokenizer extended on a tiny ru corpus) chained into 03 with
    ``lapt_params``; returns the table and the two run directories (from the sweep's plan:
    the test home is shared, so a glob could find another test's run)."""
    from lib.corpus import build_corpus
    from lib.sweep import load_sweep, run_sweep

    for language in ("ru", "en"):
        build_corpus(language, tag="tiny", max_docs_per_source=40, min_chars=100, test_fraction=0.2,
                     validation_fraction=0.1, tokenizers=[])
    sweep = tmp_path / "chain.yaml"
    sweep.write_text(f"""
table: chain.csv
steps:
  - id: v
    notebook: 04_vocab_adapt
  - notebook: 03_lapt
    params: {{model: "@v", language: ru, {lapt_params}}}
    collect: true
""")
    table = run_sweep(sweep, profile="tiny", results_dir=tmp_path, log=lambda *a: None)
    vocab_run, lapt_run = (run.run_dir for run in load_sweep(sweep, profile="tiny").runs)
    return table, vocab_run, lapt_run


@pytest.mark.slow
def test_a_tiny_run_chains_into_lapt_of_the_new_rows_alone(isolated_home, tmp_path):
    """04 (extension) then 03 in mode new_tokens: only the rows of the appended tokens train; every old
    row and every other weight of the merged checkpoint is the 04 model's, bit for bit (embeddings-only
    LAPT of a 04 run runs in `reproduce lep --profile tiny`, tests/test_reproduce.py)."""
    import torch
    from safetensors.torch import load_file

    table, vocab_run, lapt_run = _vocab_then_lapt(tmp_path, "mode: new_tokens")
    metrics = json.loads((vocab_run / "metrics.json").read_text())
    values = {(r["tokenizer"], r["language"], r["split"], r["metric"]): r["value"] for r in metrics["rows"]}
    ru_test = [values[(t, "ru", "test", "chars_per_token")] for t in ("original", "extension")]
    assert ru_test[1] > ru_test[0]
    assert values[("extension", "en", "test", "round_trip_rate")] == 1.0
    n_old = json.loads((vocab_run / "model" / "provenance.json").read_text())["old_vocab"]
    before = load_file(vocab_run / "model" / "model.safetensors")
    after = load_file(lapt_run / "model" / "model.safetensors")
    assert before.keys() == after.keys()
    (embedding,) = [k for k in before if k.endswith("embed_tokens.weight")]
    assert before[embedding].shape[0] > n_old == 49152  # SmolLM2's tokenizer, extended
    assert torch.equal(before[embedding][:n_old], after[embedding][:n_old])
    assert not torch.equal(before[embedding][n_old:], after[embedding][n_old:])
    assert all(torch.equal(before[k], after[k]) for k in before if k != embedding)
    lapt_rows = table[(table["metric"] == "bits_per_char") & (table["split"] == "test")]
    assert set(lapt_rows["stage"]) == {"before", "after"} and (lapt_rows["mode"] == "new_tokens").all()


def test_new_tokens_mode_needs_a_model_whose_vocabulary_04_changed():
    from lib.models import load_tokenizer
    from lib.stages import lapt

    with pytest.raises(P.ParamsError, match="must be a 04_vocab_adapt run"):
        lapt.added_token_ids("tiny-random", load_tokenizer("tiny-random"))


@pytest.mark.slow
def test_mean_initialisation_beats_random_on_the_real_model(isolated_home):
    """SmolLM2-135M extended for Russian: right after the change, before any training, the
    sub-token mean rows predict Russian far better than the model's own random initialisation."""
    from lib.corpus import build_corpus, load_corpus
    from lib.lm_metrics import score_texts
    from lib.models import load_model, load_tokenizer
    from lib.vocab import adapt_model, build_tokenizer

    build_corpus("ru", tag="tiny", max_docs_per_source=40, min_chars=100, test_fraction=0.2,
                 validation_fraction=0.1, tokenizers=[])
    corpus = load_corpus("ru", "tiny")
    old = load_tokenizer("smollm2-135m-instruct")
    new = build_tokenizer(old, list(corpus["train"]["text"]), "extension", vocab_size=2000)
    text = [t for t in corpus["test"]["text"]][:4]
    bpc = {}
    for init in ("mean", "random"):
        model = adapt_model(load_model("smollm2-135m-instruct"), old, new, init=init)
        bpc[init] = score_texts(model, new, text, max_length=256, stride=128).bits_per_char
    assert bpc["mean"] < bpc["random"] - 1.0, bpc


@pytest.mark.slow
def test_a_lora_adapter_trained_after_a_vocabulary_change_reloads_onto_its_base(isolated_home, tmp_path):
    """03 in lora_embeddings mode on a 04 run: the saved adapter (LoRA + the resized embedding
    rows) loads onto the 04 model without a size mismatch and gives the merged model's logits;
    onto the unchanged base it does not load."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from lib.models import resolve

    _, vocab_run, lapt_run = _vocab_then_lapt(tmp_path, "mode: lora_embeddings, max_steps: 2")
    vocab_model = vocab_run / "model"
    base = AutoModelForCausalLM.from_pretrained(vocab_model, dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, str(lapt_run / "adapter")).eval()
    merged = AutoModelForCausalLM.from_pretrained(lapt_run / "model", dtype=torch.float32).eval()
    ids = torch.tensor([[1, 5, base.config.vocab_size - 1, 7]])  # a new token's id included
    with torch.no_grad():
        assert torch.allclose(adapted(ids).logits, merged(ids).logits, atol=1e-4)
    old_base = AutoModelForCausalLM.from_pretrained(resolve("tiny-random"), dtype=torch.float32)
    assert old_base.config.vocab_size < base.config.vocab_size
    with pytest.raises(RuntimeError, match="size mismatch"):
        PeftModel.from_pretrained(old_base, str(lapt_run / "adapter"))


def test_new_tokens_mode_refuses_weight_decay_which_would_move_the_frozen_rows():
    with pytest.raises(P.ParamsError, match="weight_decay must be 0 with mode new_tokens"):
        stages.resolve("03_lapt", overrides={"mode": "new_tokens", "weight_decay": 0.1})
