"""Bad input to propagation is refused (LepError naming what differs) before anything changes."""

from __future__ import annotations

import copy

import pytest
import torch

from lib.lep import MODES, Fit, LepError, check_donor, least_squares, mode, propagate
from tests.test_lep_fixtures import donor_tokenizer, make_trio
from tests.test_vocab_fixtures import old_tokenizer


def llama(tokenizer, tied: bool = True, **overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                    tie_word_embeddings=tied)
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**settings | overrides)).eval()


def mistral(tokenizer, tied: bool = True):
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    return MistralForCausalLM(MistralConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=tied)).eval()


def refused(trio, match: str, **kwargs) -> None:
    """``propagate`` raises LepError matching ``match`` and leaves the instruct model as it was."""
    before = {k: v.clone() for k, v in trio.instruct.state_dict().items()}
    vocab_size = trio.instruct.config.vocab_size
    with pytest.raises(LepError, match=match):
        propagate(*trio.args(), **kwargs)
    after = trio.instruct.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in after)
    assert trio.instruct.config.vocab_size == vocab_size


@pytest.mark.parametrize("role", ["instruct", "donor"])
@pytest.mark.parametrize("change,match", [
    ("model_type", r"model_type: base 'llama', \w+ 'mistral'"),
    ("hidden_size", r"hidden_size: base 32, \w+ 64"),
    ("tied", r"tied: base True, \w+ False"),
    ("layers", r"non-embedding weights of base and \w+ differ \(only in \w+: model\.layers\.2\."),
    ("intermediate", r"other shapes: model\.layers\.0\.mlp"),
])
def test_models_of_another_architecture_size_tying_or_depth_are_refused(role, change, match):
    trio = make_trio(tied=True)
    tok = trio.instruct_tokenizer if role == "instruct" else trio.donor_tokenizer
    other = {"model_type": lambda: mistral(tok),
             "hidden_size": lambda: llama(tok, hidden_size=64, intermediate_size=128),
             "tied": lambda: llama(tok, tied=False),
             "layers": lambda: llama(tok, num_hidden_layers=3),
             "intermediate": lambda: llama(tok, intermediate_size=48)}[change]()
    setattr(trio, role, other)
    refused(trio, match)


def test_a_model_without_an_output_head_is_refused():
    from transformers import LlamaModel

    trio = make_trio()
    trio.donor = LlamaModel(trio.donor.config)
    refused(trio, "no input embeddings or no output head")


def test_an_unknown_mode_is_refused_naming_the_known_ones():
    refused(make_trio(), r"unknown propagation mode 'average'; choose one of \['conversion', 'overlap', 'swap'\]",
            mode="average")


def test_a_donor_tokenizer_from_another_base_is_refused():
    trio = make_trio("byte_level", "extension")
    trio.donor_tokenizer = donor_tokenizer("sentencepiece", "bpe")
    trio.donor = llama(trio.donor_tokenizer)
    refused(trio, "donor tokenizer was not built from the base tokenizer.*kind byte_level against the donor's "
                  "sentencepiece")


def test_a_full_replacement_without_the_base_special_tokens_is_refused():
    old = old_tokenizer("byte_level")
    stranger = copy.deepcopy(old)  # a base with one more special token than the donor's own base
    stranger.add_special_tokens({"additional_special_tokens": ["<|stranger|>"]})
    new = donor_tokenizer("byte_level", "bpe")
    assert check_donor(old, new) == "replacement"
    with pytest.raises(LepError, match=r"special tokens <\|stranger\|> missing"):
        check_donor(stranger, new)


def test_a_donor_whose_provenance_names_another_base_is_refused():
    trio = make_trio()
    refused(trio, r"adapted from a 999-token tokenizer \(its provenance.json\)", provenance={"old_vocab": 999})
    refused(trio, r"provenance.json records 12 tokens", provenance={"vocab_size": 12})
    provenance = {"old_vocab": len(trio.base_tokenizer), "vocab_size": len(trio.donor_tokenizer)}
    assert check_donor(trio.base_tokenizer, trio.donor_tokenizer, provenance) == "appends"


def test_an_instruct_tokenizer_without_the_base_vocabulary_is_refused():
    trio = make_trio("byte_level", "extension")
    trio.instruct_tokenizer = old_tokenizer("sentencepiece")
    trio.instruct = llama(trio.instruct_tokenizer)
    refused(trio, "the instruct tokenizer is not the base's vocabulary.*missing")


def test_a_model_smaller_than_its_tokenizer_is_refused():
    trio = make_trio(tool_token=True)
    trio.instruct = copy.deepcopy(trio.base)  # lacks the row of the instruct tokenizer's extra token
    refused(trio, r"the instruct model has \d+ embedding rows but its tokenizer \d+ tokens")


def test_least_squares_leaves_the_directions_the_rows_do_not_determine_alone():
    generator = torch.Generator().manual_seed(0)
    A = torch.randn(10, 32, generator=generator, dtype=torch.float64)  # 10 rows: rank 10 of 32
    M = torch.randn(32, 32, generator=generator, dtype=torch.float64)
    fit = least_squares(A, A @ M)
    assert fit.rows == 10 and fit.rank == 10 and fit.residual < 1e-10 and fit.identity_residual > 0.5
    x = torch.randn(5, 32, generator=generator, dtype=torch.float64)
    x = x - (x @ torch.linalg.pinv(A)) @ A  # orthogonal to every fitted row
    torch.testing.assert_close(x @ fit.P, x)
    assert torch.equal(least_squares(A, A).P, torch.eye(32, dtype=torch.float64))  # T = S: exactly I
    full = torch.randn(64, 32, generator=generator, dtype=torch.float64)
    fit = least_squares(full, full @ M)
    assert fit.rank == 32 and torch.allclose(fit.P, M, atol=1e-10)
    with pytest.raises(LepError, match="no rows"):
        least_squares(A[:0], A[:0])


def test_adding_a_mode_is_adding_one_function():
    @mode
    def halve(base_rows, instruct_rows, context):
        return Fit(P=0.5 * torch.eye(base_rows.shape[1], dtype=torch.float64))

    try:
        trio = make_trio(tied=False)
        E_D = trio.donor.get_input_embeddings().weight.detach().clone()
        model, _, report = propagate(*trio.args(), mode="halve")
        rows = [i for i in range(len(E_D)) if i not in set(report.copied.values())]
        torch.testing.assert_close(model.get_input_embeddings().weight[rows], 0.5 * E_D[rows])
        assert report.mode == "halve" and report.matrices["output"].rows_fitted == 0
    finally:
        MODES.pop("halve")
