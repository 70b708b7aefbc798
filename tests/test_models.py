from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib import models


def test_unknown_model_lists_known_ones():
    with pytest.raises(models.ModelSpecError, match="smollm2-135m-instruct.*tiny-random"):
        models.resolve("smollm3-9000")


@pytest.mark.parametrize("spec", ["", "   "])
def test_empty_spec(spec):
    with pytest.raises(models.ModelSpecError, match="non-empty"):
        models.resolve(spec)


def test_hub_id_passes_through_untouched(monkeypatch):
    monkeypatch.setattr(models, "_HUB_OK", {"mistralai/Mistral-7B-v0.1"})  # as if the hub had answered
    assert models.resolve("mistralai/Mistral-7B-v0.1") == "mistralai/Mistral-7B-v0.1"


def test_hub_id_without_the_hub_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelSpecError, match="hub id, but the hub cannot be reached.*HF_HUB_OFFLINE"):
        models.resolve("someorg/not-in-the-cache")


def test_local_dir_without_checkpoint(tmp_path):
    with pytest.raises(models.ModelSpecError, match="no Hugging Face checkpoint"):
        models.resolve(str(tmp_path))


def test_run_directory_resolves_to_its_model(tmp_path, shared_cache):
    tiny = models.resolve("tiny-random")
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text((shared_cache / "models/tiny-random/config.json").read_text())
    assert models.resolve(str(run)) == str((run / "model").resolve())
    assert Path(models.resolve(tiny)) == Path(tiny).resolve()


def test_tiny_random_uses_the_real_tokenizer(shared_cache):
    model, tokenizer = models.load_model_and_tokenizer("tiny-random")
    assert len(tokenizer) == 49152
    assert model.get_input_embeddings().weight.shape == (49152, 64)
    provenance = json.loads((shared_cache / "models/tiny-random/provenance.json").read_text())
    assert provenance["registry_name"] == "tiny-random"


def test_mismatched_tokenizer_is_an_error():
    model = models.load_model("tiny-random")
    model.resize_token_embeddings(1000)
    tokenizer = models.load_tokenizer("tiny-random")
    with pytest.raises(models.ModelSpecError, match="mismatch.*49152 tokens.*1000 rows"):
        models.check_compatible(model, tokenizer, "tiny-random")


def test_bad_dtype():
    with pytest.raises(ValueError, match="unknown dtype"):
        models.load_model("tiny-random", dtype="int3")


def test_cuda_without_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        models.resolve_device("cuda")
    assert models.resolve_device("auto") == "cpu"


@pytest.mark.slow
def test_packaged_smollm2_is_a_real_pretrained_model():
    """The converted GGUF predicts English far better than chance (random = ln 49152 = 10.8 nats)."""
    import torch

    model, tokenizer = models.load_model_and_tokenizer("smollm2-135m-instruct")
    assert model.config.tie_word_embeddings
    ids = tokenizer("The quick brown fox jumps over the lazy dog. " * 3, return_tensors="pt").input_ids
    with torch.inference_mode():
        loss = model(ids, labels=ids).loss.item()
    assert loss < 3.0


def test_a_sequence_classifier_is_not_loaded_as_a_language_model(tmp_path):
    import json

    from lib.models import ModelSpecError, load_model

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForSequenceClassification"],
                                                      "model_type": "llama"}))
    with pytest.raises(ModelSpecError, match="sequence classifier"):
        load_model(str(tmp_path))
