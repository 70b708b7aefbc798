"""Tiny S/T/D trios for the lib.lep tests, built in-test in well under a second each.

S is a tiny Llama over one of the shared old tokenizers of ``tests.test_vocab_fixtures``; D is S
after 04's ``adapt_model`` (mean init) on a new tokenizer, then "trained": noise on its embedding
rows (and head), optionally on its layers too (a merged LoRA); T is a copy of S, optionally with
its embedding matrices mapped by an exact invertible A (head by B), its layers moved, and a
T-only chat token.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

import torch

from lib.vocab import adapt_model, build_tokenizer
from lib.vocab.init import is_tied
from tests.test_vocab_fixtures import CHAT, english_texts, old_tokenizer, target_texts, tiny_model

DONORS = [("byte_level", "extension"), ("sentencepiece", "bpe")]  # appended ids; a full replacement
TOOL = "<|tool|>"
INSTRUCT_CHAT = "{{ '<|tool|>' }}" + CHAT


@functools.cache
def donor_tokenizer(kind: str, strategy: str):
    """Shared per session: never modify it."""
    return build_tokenizer(old_tokenizer(kind), target_texts(), strategy, english_texts=english_texts(), vocab_size=500)


def noise_like(weight, seed: int, scale: float = 0.05):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(weight.shape, generator=generator, dtype=weight.dtype) * scale


def layers(model) -> dict[str, Any]:
    embeddings = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return {name: p for name, p in model.named_parameters() if id(p) not in embeddings}


def snapshot(model) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in layers(model).items()}


def random_map(d: int, seed: int):
    """A well-conditioned invertible d x d matrix."""
    generator = torch.Generator().manual_seed(seed)
    return torch.eye(d) + 0.3 * torch.randn(d, d, generator=generator) / d ** 0.5


@dataclass
class Trio:
    base: Any
    instruct: Any
    donor: Any
    base_tokenizer: Any
    donor_tokenizer: Any
    instruct_tokenizer: Any
    A: Any = None  # E_T = E_S A (input), H_T = H_S B (untied head)
    B: Any = None

    def args(self):
        return (self.base, self.instruct, self.donor, self.base_tokenizer, self.donor_tokenizer,
                self.instruct_tokenizer)


def make_trio(kind: str = "byte_level", strategy: str = "extension", *, tied: bool = True, linear: bool = False,
              move_layers: bool = False, train_donor_layers: bool = False, train_specials: bool = True,
              tool_token: bool = False) -> Trio:
    old, new = old_tokenizer(kind), donor_tokenizer(kind, strategy)
    base = tiny_model(old, tied=tied, seed=0)
    donor = adapt_model(copy.deepcopy(base), old, new, init="mean")
    specials = [new.convert_tokens_to_ids(t) for t in old.added_tokens_encoder]
    with torch.no_grad():
        weights = [donor.get_input_embeddings().weight] + ([] if tied else [donor.get_output_embeddings().weight])
        for seed, weight in enumerate(weights, start=10):
            step = noise_like(weight, seed)
            if not train_specials:
                step[specials] = 0
            weight.add_(step)
        if train_donor_layers:
            for seed, p in enumerate(layers(donor).values(), start=100):
                p.add_(noise_like(p, seed, 0.01))
    instruct = copy.deepcopy(base)
    tok = old
    A = B = None
    with torch.no_grad():
        if linear:
            d = base.config.hidden_size
            A = random_map(d, 1)
            instruct.get_input_embeddings().weight.copy_(base.get_input_embeddings().weight @ A)
            if not tied:
                B = random_map(d, 2)
                instruct.get_output_embeddings().weight.copy_(base.get_output_embeddings().weight @ B)
        if move_layers:
            for seed, p in enumerate(layers(instruct).values(), start=200):
                p.add_(noise_like(p, seed, 0.01))
    if tool_token:
        tok = copy.deepcopy(old)
        tok.add_special_tokens({"additional_special_tokens": [TOOL]})
        tok.chat_template = INSTRUCT_CHAT
        instruct.resize_token_embeddings(len(tok), mean_resizing=False)
        with torch.no_grad():
            instruct.get_input_embeddings().weight[-1] = 0.5
            if not tied:
                instruct.get_output_embeddings().weight[-1] = -0.5
    assert is_tied(instruct) == is_tied(donor) == is_tied(base) == tied
    return Trio(base, instruct, donor, old, new, tok, A, B)


def test_trio_fixture_is_what_it_says():
    trio = make_trio(tied=False, linear=True, tool_token=True)
    E_S, E_T = trio.base.get_input_embeddings().weight, trio.instruct.get_input_embeddings().weight
    torch.testing.assert_close(E_T[: E_S.shape[0]], E_S @ trio.A)
    assert len(trio.instruct_tokenizer) == len(trio.base_tokenizer) + 1 == E_T.shape[0]
    assert trio.donor.get_input_embeddings().weight.shape[0] == len(trio.donor_tokenizer)
