"""New-token embeddings: the sub-token mean map phi(E) and adapt_model on tiny tied and untied Llamas."""

from __future__ import annotations

import functools
import time

import pytest
import torch

from lib.vocab import INITS, SubtokenMap, VocabError, adapt_model, build_tokenizer, subtoken_map, subtoken_mean
from lib.vocab.backend import backend_json, from_json
from tests.test_vocab_fixtures import KINDS, english_texts, old_tokenizer, target_texts, tiny_model

PARAMS = {"extension": dict(vocab_size=600), "bpe": dict(vocab_size=500),
          "add_tokens": dict(n_tokens=20, vocab_size=500)}


@functools.cache
def new_tokenizer(kind: str, strategy: str):
    return build_tokenizer(old_tokenizer(kind), target_texts(), strategy, english_texts=english_texts(),
                           **PARAMS[strategy])


def old_sub_ids(old, token: str) -> list[int]:
    """What the old model alone makes of a new token string (the same-kind rule of lib.vocab.init)."""
    spec = backend_json(old)
    model_only = from_json({"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None,
                            "post_processor": None, "decoder": None, "truncation": None, "padding": None,
                            "model": spec["model"]})
    return model_only.encode(token, add_special_tokens=False).ids


@pytest.mark.parametrize("kind", KINDS)
def test_map_of_an_extension_keeps_old_rows_and_averages_sub_tokens(kind):
    old, new = old_tokenizer(kind), new_tokenizer(kind, "extension")
    mapping = subtoken_map(old, new)
    assert mapping.n_new == len(new) and mapping.n_old == len(old)
    assert bool(mapping.same[: len(old)].all()) and not bool(mapping.same[len(old):].any())
    matrix = torch.randn(len(old), 8)
    phi = mapping.apply(matrix)
    assert torch.equal(phi[: len(old)], matrix)
    checked = 0
    for i in range(len(old), len(new)):
        sub = old_sub_ids(old, new.convert_ids_to_tokens(i))
        expected = matrix[sub].mean(0) if sub else matrix.mean(0)
        assert torch.allclose(phi[i], expected, atol=1e-6), new.convert_ids_to_tokens(i)
        checked += bool(sub)
    assert checked > 20
    assert torch.equal(subtoken_mean(matrix, old, new), phi)


@pytest.mark.parametrize("kind", KINDS)
def test_map_after_full_replacement_reuses_rows_by_token_string(kind):
    old, new = old_tokenizer(kind), new_tokenizer(kind, "bpe")
    mapping = subtoken_map(old, new)
    matrix = torch.randn(len(old), 8)
    phi = mapping.apply(matrix)
    old_vocab = old.get_vocab()
    shared = [(i, old_vocab[t]) for t, i in new.get_vocab().items() if t in old_vocab]
    assert len(shared) > 250  # bytes, specials and common pieces
    for new_id, old_id in shared:
        assert bool(mapping.same[new_id]) and torch.equal(phi[new_id], matrix[old_id])
    assert int(mapping.same.sum()) == len(shared)


@pytest.mark.parametrize("kind", KINDS)
def test_map_of_added_tokens_encodes_their_text_with_the_old_tokenizer(kind):
    old, new = old_tokenizer(kind), new_tokenizer(kind, "add_tokens")
    mapping = subtoken_map(old, new)
    for i in range(len(old), len(new)):
        text = new.convert_ids_to_tokens(i)
        bag = mapping.ids[mapping.offsets[i]:mapping.offsets[i + 1]].tolist()
        assert bag == old(text, add_special_tokens=False)["input_ids"]


def test_empty_bags_get_the_mean_of_all_old_rows_and_dtype_is_kept():
    mapping = SubtokenMap(ids=torch.tensor([1, 0, 2]), offsets=torch.tensor([0, 1, 1, 3]), n_old=3,
                          same=torch.tensor([True, False, False]))
    matrix = torch.tensor([[0.0, 2.0], [4.0, 6.0], [8.0, 10.0]], dtype=torch.bfloat16)
    phi = mapping.apply(matrix)
    assert phi.dtype == torch.bfloat16
    assert phi.float().tolist() == [[4.0, 6.0], [4.0, 6.0], [4.0, 6.0]]
    with pytest.raises(VocabError, match="rows"):
        mapping.apply(matrix[:2])


def test_apply_is_vectorised_for_a_130k_vocabulary():
    n_old, n_new, dim = 128_000, 138_000, 64
    lengths = torch.ones(n_new, dtype=torch.long)
    lengths[n_old:] = 4
    offsets = torch.zeros(n_new + 1, dtype=torch.long)
    offsets[1:] = lengths.cumsum(0)
    mapping = SubtokenMap(ids=torch.randint(0, n_old, (int(offsets[-1]),)), offsets=offsets, n_old=n_old,
                          same=lengths == 1)
    start = time.perf_counter()
    phi = mapping.apply(torch.randn(n_old, dim))
    assert phi.shape == (n_new, dim) and time.perf_counter() - start < 5


# ---------------------------------------------------------------- adapt_model


def embeddings(model):
    return model.get_input_embeddings().weight, model.get_output_embeddings().weight


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("strategy", ["extension", "add_tokens"])
def test_adapt_model_after_appending(strategy, init, tied):
    old, new = old_tokenizer("byte_level"), new_tokenizer("byte_level", strategy)
    model = tiny_model(old, tied=tied)
    old_in, old_out = (w.detach().clone() for w in embeddings(model))
    adapt_model(model, old, new, init=init)
    emb, head = embeddings(model)
    assert emb.shape[0] == head.shape[0] == len(new) == model.config.vocab_size
    assert (emb is head) == tied
    assert torch.equal(emb[: len(old)], old_in) and torch.equal(head[: len(old)], old_out)
    new_rows = emb[len(old):].detach()
    if init == "mean":
        mapping = subtoken_map(old, new)
        assert torch.allclose(emb.detach(), mapping.apply(old_in))
        if not tied:
            assert torch.allclose(head.detach(), mapping.apply(old_out))
    elif init == "random":
        assert abs(new_rows.std().item() - model.config.initializer_range) < 0.005
    else:  # mean_resize: samples around the old mean
        assert torch.allclose(new_rows.mean(0), old_in.mean(0), atol=0.05)
    ids = torch.tensor([new("Съешь мягких булок, выпей чаю.")["input_ids"]])
    assert model(ids).logits.shape == (1, ids.shape[1], len(new))


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("init", ["mean", "random"])
def test_adapt_model_after_full_replacement(init, tied):
    old, new = old_tokenizer("sentencepiece"), new_tokenizer("sentencepiece", "bpe")
    model = tiny_model(old, tied=tied)
    old_in, old_out = (w.detach().clone() for w in embeddings(model))
    adapt_model(model, old, new, init=init)
    emb, head = embeddings(model)
    assert (emb is head) == tied and emb.shape[0] == len(new)
    old_vocab = old.get_vocab()
    for token, i in new.get_vocab().items():
        if token in old_vocab:
            assert torch.equal(emb[i], old_in[old_vocab[token]])
            assert torch.equal(head[i], old_out[old_vocab[token]])
    with pytest.raises(VocabError, match="mean_resize.*appends ids"):
        adapt_model(tiny_model(old), old, new, init="mean_resize")


def test_config_token_ids_follow_the_new_tokenizer_when_specials_move():
    old = old_tokenizer("tiktoken")  # specials after the ranks, as in LLaMa-3
    new = build_tokenizer(old, target_texts(), "bpe", vocab_size=500)
    assert new.bos_token_id != old.bos_token_id
    model = tiny_model(old, tied=False)
    model.config.pad_token_id = old.convert_tokens_to_ids("<|eot_id|>")
    model.generation_config.eos_token_id = [old.eos_token_id, old.convert_tokens_to_ids("<|eot_id|>")]
    bos_row = model.get_input_embeddings().weight[old.bos_token_id].detach().clone()
    adapt_model(model, old, new, init="mean")
    assert model.config.bos_token_id == new.bos_token_id and model.config.eos_token_id == new.eos_token_id
    assert model.config.pad_token_id == new.convert_tokens_to_ids("<|eot_id|>")
    assert model.generation_config.eos_token_id == [new.eos_token_id, new.convert_tokens_to_ids("<|eot_id|>")]
    assert torch.equal(model.get_input_embeddings().weight[new.bos_token_id], bos_row)


def test_padding_rows_beyond_the_old_tokenizer_are_dropped_first():
    old, new = old_tokenizer("byte_level"), new_tokenizer("byte_level", "extension")
    model = tiny_model(old)
    model.resize_token_embeddings(len(old) + 64, mean_resizing=False)  # a checkpoint padded to a multiple
    with torch.no_grad():
        model.get_input_embeddings().weight[len(old):] = 7.0
    adapt_model(model, old, new, init="random")
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] == len(new) and float(emb[len(old):].detach().abs().max()) < 1.0


def test_unknown_init_and_too_small_model():
    old, new = old_tokenizer("byte_level"), new_tokenizer("byte_level", "extension")
    with pytest.raises(VocabError, match="unknown init 'zeros'.*mean"):
        adapt_model(tiny_model(old), old, new, init="zeros")
    small = tiny_model(old)
    small.resize_token_embeddings(len(old) - 10)
    with pytest.raises(VocabError, match="fewer embedding rows"):
        adapt_model(small, old, new)


def test_random_init_is_reproducible_and_leaves_global_rng_alone():
    old, new = old_tokenizer("byte_level"), new_tokenizer("byte_level", "extension")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b = tiny_model(old), tiny_model(old)
    torch.set_rng_state(state)
    adapt_model(a, old, new, init="random", seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    adapt_model(b, old, new, init="random", seed=5)
    assert torch.equal(a.get_input_embeddings().weight, b.get_input_embeddings().weight)
