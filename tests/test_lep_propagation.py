"""Exactness of the propagation on tiny trios: T = S gives D back, an exact linear map is recovered,
T's layers and special rows survive, the saved output reloads with identical logits."""

from __future__ import annotations

import json

import pytest
import torch

from lib.lep import MODES, propagate
from lib.vocab import load_provenance, save_checkpoint
from lib.vocab.init import is_tied
from tests.test_lep_fixtures import DONORS, INSTRUCT_CHAT, TOOL, make_trio, snapshot


def matrices(model):
    head = model.get_output_embeddings().weight
    return model.get_input_embeddings().weight.detach(), head.detach()


def kept_rows(report) -> list[int]:
    return sorted(report.copied.values())


def other_rows(report) -> list[int]:
    kept = set(report.copied.values())
    return [i for i in range(report.sizes["output_vocab"]) if i not in kept]


@pytest.mark.parametrize("kind,strategy", DONORS)
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_instruct_equal_to_base_gives_the_donor_back(kind, strategy, tied, mode):
    trio = make_trio(kind, strategy, tied=tied, train_specials=False)
    want_in, want_out = (m.clone() for m in matrices(trio.donor))
    model, tokenizer, report = propagate(*trio.args(), mode=mode)
    got_in, got_out = matrices(model)
    assert got_in.shape == want_in.shape and len(tokenizer) == len(trio.donor_tokenizer)
    assert torch.equal(got_in, want_in) and torch.equal(got_out, want_out)  # P = I exactly, bit for bit
    assert is_tied(model) == tied
    assert set(report.matrices) == ({"input"} if tied else {"input", "output"})
    for fit in report.matrices.values():
        assert fit.map_distance == 0.0
        assert fit.rows_fitted == 0 if mode == "swap" else fit.residual == fit.identity_residual == 0.0
    assert model.config.vocab_size == len(tokenizer) and report.appended == []


@pytest.mark.parametrize("kind,strategy", DONORS)
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("mode", ["conversion", "overlap"])
def test_an_exact_linear_map_is_recovered(kind, strategy, tied, mode):
    trio = make_trio(kind, strategy, tied=tied, linear=True, move_layers=True)
    E_D, H_D = (m.clone() for m in matrices(trio.donor))
    T_in, T_out = (m.clone() for m in matrices(trio.instruct))
    T_layers = snapshot(trio.instruct)
    model, tokenizer, report = propagate(*trio.args(), mode=mode)
    torch.testing.assert_close(report.maps["input"].float(), trio.A, atol=1e-4, rtol=1e-4)
    assert report.matrices["input"].residual < 1e-5 < report.matrices["input"].identity_residual
    assert report.matrices["input"].rank == trio.base.config.hidden_size
    got_in, got_out = matrices(model)
    rows, kept = other_rows(report), kept_rows(report)
    torch.testing.assert_close(got_in[rows], (E_D @ trio.A)[rows], atol=1e-5, rtol=1e-4)
    ids = [trio.instruct_tokenizer.convert_tokens_to_ids(t) for t in report.copied]
    assert torch.equal(got_in[list(report.copied.values())], T_in[ids])  # T's own rows, bit for bit
    if tied:
        assert is_tied(model) and "output" not in report.maps
    else:
        torch.testing.assert_close(report.maps["output"].float(), trio.B, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got_out[rows], (H_D @ trio.B)[rows], atol=1e-5, rtol=1e-4)
        assert torch.equal(got_out[list(report.copied.values())], T_out[ids])
    after = snapshot(model)
    assert after.keys() == T_layers.keys() and all(torch.equal(after[k], T_layers[k]) for k in after)
    assert kept  # the special tokens were copied


@pytest.mark.parametrize("tied", [True, False])
def test_swap_copies_the_donor_whatever_the_instruct_embeddings(tied):
    trio = make_trio(tied=tied, linear=True)
    E_D, H_D = (m.clone() for m in matrices(trio.donor))
    model, _, report = propagate(*trio.args(), mode="swap")
    rows = other_rows(report)
    got_in, got_out = matrices(model)
    assert torch.equal(got_in[rows], E_D[rows]) and torch.equal(got_out[rows], H_D[rows])
    assert report.matrices["input"].map_distance == 0.0


@pytest.mark.parametrize("kind,strategy", DONORS)
@pytest.mark.parametrize("tied", [True, False])
def test_instruct_special_tokens_keep_their_rows_and_a_missing_one_is_appended(kind, strategy, tied):
    trio = make_trio(kind, strategy, tied=tied, linear=True, tool_token=True)
    T_in, T_out = (m.clone() for m in matrices(trio.instruct))
    inst = trio.instruct_tokenizer
    eos_token = inst.convert_ids_to_tokens(trio.instruct.config.eos_token_id)
    model, tokenizer, report = propagate(*trio.args())
    n_donor = len(trio.donor_tokenizer)
    assert report.appended == [TOOL] and tokenizer.convert_tokens_to_ids(TOOL) == n_donor == len(tokenizer) - 1
    assert set(report.copied) == set(inst.added_tokens_encoder) | set(inst.all_special_tokens)
    got_in, got_out = matrices(model)
    for token, out_id in report.copied.items():
        assert torch.equal(got_in[out_id], T_in[inst.convert_tokens_to_ids(token)]), token
        assert torch.equal(got_out[out_id], T_out[inst.convert_tokens_to_ids(token)]), token
    assert torch.all(got_in[n_donor] == 0.5)
    assert tokenizer.special_tokens_map == inst.special_tokens_map
    assert list(tokenizer.extra_special_tokens) == [TOOL] and TOOL in tokenizer.all_special_tokens
    assert tokenizer.chat_template == INSTRUCT_CHAT
    assert tokenizer(TOOL, add_special_tokens=False)["input_ids"] == [n_donor]
    assert tokenizer.decode([n_donor], skip_special_tokens=True) == ""
    assert model.config.eos_token_id == tokenizer.convert_tokens_to_ids(eos_token)
    assert model.generation_config.eos_token_id == model.config.eos_token_id
    assert model.config.vocab_size == len(tokenizer) == got_in.shape[0]
    for token in trio.donor_tokenizer.get_vocab():  # D's vocabulary, ids unchanged
        assert tokenizer.convert_tokens_to_ids(token) == trio.donor_tokenizer.convert_tokens_to_ids(token)


@pytest.mark.parametrize("tied", [True, False])
def test_layer_deltas_add_the_donor_layers_difference(tied):
    trio = make_trio("sentencepiece", "bpe", tied=tied, linear=True, move_layers=True, train_donor_layers=True)
    S, T, D = snapshot(trio.base), snapshot(trio.instruct), snapshot(trio.donor)
    plain = make_trio("sentencepiece", "bpe", tied=tied, linear=True, move_layers=True, train_donor_layers=True)
    without, _, _ = propagate(*plain.args())
    model, _, report = propagate(*trio.args(), layer_deltas=True)
    after = snapshot(model)
    assert report.layers_changed == len(after)
    for name, value in after.items():
        want = (T[name].double() + (D[name].double() - S[name].double())).float()
        assert torch.equal(value, want), name
        assert not torch.equal(value, T[name])
    assert all(torch.equal(a, b) for a, b in zip(matrices(model), matrices(without)))


def test_layer_deltas_with_instruct_equal_to_base_rebuild_the_donor():
    trio = make_trio("byte_level", "extension", tied=False, train_donor_layers=True, train_specials=False)
    model, _, _ = propagate(*trio.args(), layer_deltas=True)
    donor = trio.donor.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, donor[name]), name


@pytest.mark.parametrize("kind,strategy", DONORS)
@pytest.mark.parametrize("tied", [True, False])
def test_the_saved_output_reloads_with_identical_logits(tmp_path, kind, strategy, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lib.models import compatibility_problems

    trio = make_trio(kind, strategy, tied=tied, linear=True, tool_token=True)
    model, tokenizer, report = propagate(*trio.args())
    json.dumps(report.as_dict())  # JSON-ready as it is
    out = save_checkpoint(model, tokenizer, tmp_path / "model", {"stage": "07_lep_propagate", **report.as_dict()})
    assert load_provenance(out)["mode"] == "conversion"
    again = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.get_vocab() == tokenizer.get_vocab() and tok.chat_template == tokenizer.chat_template
    assert tok.special_tokens_map == tokenizer.special_tokens_map and is_tied(again) == tied
    assert compatibility_problems(again, tok) == []  # config ids and sizes agree with the tokenizer
    text = tok.apply_chat_template([{"role": "user", "content": "Привет, мир! Откройте меню файла."}], tokenize=False)
    ids = torch.tensor([tok(text)["input_ids"]])
    assert ids.max() < len(tok) and TOOL in text
    with torch.no_grad():
        assert torch.equal(again(ids).logits, model.eval()(ids).logits)


def test_the_same_object_as_base_and_instruct():
    trio = make_trio(tied=False, train_specials=False)
    want_in, want_out = (m.clone() for m in matrices(trio.donor))
    model, _, _ = propagate(trio.base, trio.base, *trio.args()[2:])
    assert torch.equal(matrices(model)[0], want_in) and torch.equal(matrices(model)[1], want_out)
