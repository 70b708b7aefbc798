"""New-token embeddings: the sub-token mean map phi(E) and ``adapt_model``.

``subtoken_map(old_tokenizer, new_tokenizer)`` says, for every new id, which old rows make its
row: the old row itself when the token string exists in the old vocabulary (full replacement
reuses rows too); otherwise the old tokens of its text (LEP: decode, encode with the old
tokenizer). ``SubtokenMap.apply(E)`` averages them in one ``embedding_bag`` call, so a
130k-row vocabulary maps in seconds; an empty bag gets the mean of all old rows. The LEP
propagation stage reuses exactly this map (its phi(E)).

How a new token becomes old sub-tokens:
- an added token (``add_tokens``): its text, encoded by the old tokenizer;
- a model token when both tokenizers are of the same kind: its token string run through the
  old tokenizer's model alone (no normaliser or pre-tokeniser), so a byte-level piece that is
  half a Cyrillic letter still maps to the old bytes of that half;
- otherwise: ``new_tokenizer.decode([id])`` encoded by the old tokenizer.

Inits (``INITS``): ``mean`` (LEP), ``random`` (the model's own initialisation, as LlamaTurk left
its new rows), ``mean_resize`` (transformers' ``resize_token_embeddings(mean_resizing=True)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lib.vocab.backend import VocabError, backend_json, from_json, tokenizer_kind

INITS = ("mean", "random", "mean_resize")


@dataclass(frozen=True)
class SubtokenMap:
    """New row ``i`` = mean of old rows ``ids[offsets[i]:offsets[i+1]]`` (all old rows when empty)."""

    ids: Any  # LongTensor of old ids, bag after bag
    offsets: Any  # LongTensor [n_new + 1], start of each bag and the end
    n_old: int
    same: Any  # BoolTensor [n_new]: the bag is the old row of the same token string

    @property
    def n_new(self) -> int:
        return len(self.offsets) - 1

    def apply(self, matrix):
        """phi(matrix): the old ``[n_old or more, d]`` matrix mapped onto the new vocabulary."""
        import torch.nn.functional as F

        if matrix.shape[0] < self.n_old:
            raise VocabError(f"the matrix has {matrix.shape[0]} rows but the old tokenizer {self.n_old} tokens")
        source = matrix.detach()[: self.n_old].float()
        out = F.embedding_bag(self.ids, source, self.offsets[:-1], mode="mean")
        empty = (self.offsets[1:] - self.offsets[:-1]) == 0
        if bool(empty.any()):
            out[empty] = source.mean(dim=0)
        return out.to(matrix.dtype)


def subtoken_map(old_tokenizer, new_tokenizer) -> SubtokenMap:
    """The index structure of phi: old sub-token ids of every new token (see the module docstring)."""
    import torch

    old_vocab = old_tokenizer.get_vocab()
    n_old = len(old_tokenizer)
    new_vocab = new_tokenizer.get_vocab()
    n_new = len(new_tokenizer)
    id_to_token = {i: t for t, i in new_vocab.items()}
    if sorted(id_to_token) != list(range(n_new)) or max(old_vocab.values()) >= n_old:
        raise VocabError("tokenizer ids must run from 0 to len(tokenizer) - 1 without gaps")
    added = set(new_tokenizer.added_tokens_encoder)
    bags: list[list[int] | None] = [None] * n_new
    by_text, by_model = [], []
    for i in range(n_new):
        token = id_to_token[i]
        if token in old_vocab:
            bags[i] = [old_vocab[token]]
        elif token in added:
            by_text.append((i, token))
        else:
            by_model.append(i)
    same = torch.tensor([b is not None for b in bags], dtype=torch.bool)
    old_spec = backend_json(old_tokenizer)
    if by_model and _same_kind(old_spec, backend_json(new_tokenizer)):
        model_only = from_json({"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
                                "normalizer": None, "pre_tokenizer": None, "post_processor": None,
                                "decoder": None, "model": old_spec["model"]})
        for i, enc in zip(by_model, model_only.encode_batch([id_to_token[i] for i in by_model],
                                                            add_special_tokens=False), strict=True):
            bags[i] = [t for t in enc.ids if t < n_old]
    else:
        by_text += [(i, new_tokenizer.decode([i], clean_up_tokenization_spaces=False)) for i in by_model]
    if by_text:
        encoded = old_tokenizer([text for _, text in by_text], add_special_tokens=False)["input_ids"]
        for (i, _), ids in zip(by_text, encoded, strict=True):
            bags[i] = list(ids)
    lengths = torch.tensor([len(b) for b in bags], dtype=torch.long)
    offsets = torch.zeros(n_new + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(lengths, 0)
    ids = torch.tensor([t for b in bags for t in b], dtype=torch.long)
    return SubtokenMap(ids=ids, offsets=offsets, n_old=n_old, same=same)


def _same_kind(old_spec: dict[str, Any], new_spec: dict[str, Any]) -> bool:
    try:
        return tokenizer_kind(old_spec) == tokenizer_kind(new_spec)
    except VocabError:
        return False


def subtoken_mean(matrix, old_tokenizer, new_tokenizer):
    """phi(matrix): LEP's sub-token mean of an old embedding (or output) matrix on the new vocabulary."""
    return subtoken_map(old_tokenizer, new_tokenizer).apply(matrix)


# ---------------------------------------------------------------- the model


def is_tied(model) -> bool:
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def appends(old_tokenizer, new_tokenizer) -> bool:
    """Whether the new tokenizer keeps every old id with its token and only adds ids after them."""
    old, new = old_tokenizer.get_vocab(), new_tokenizer.get_vocab()
    return len(new) >= len(old) and all(new.get(t) == i for t, i in old.items())


def adapt_model(model, old_tokenizer, new_tokenizer, init: str = "mean", seed: int = 0):
    """Resize and initialise the input embeddings and output head for ``new_tokenizer``, in place.

    Rows beyond the old tokenizer (padding rows some checkpoints carry) are dropped first, so
    every new id gets the chosen initialisation. Tied embeddings stay one tensor; an untied
    head is initialised like the inputs, from the old head rows. The config's vocabulary size
    and bos/eos/pad ids follow the new tokenizer (mapped through the token strings).
    """
    import torch

    if init not in INITS:
        raise VocabError(f"unknown init {init!r}; choose one of {INITS}")
    appended = appends(old_tokenizer, new_tokenizer)
    if init == "mean_resize" and not appended:
        raise VocabError("init 'mean_resize' needs a tokenizer that appends ids to the old ones (extension, "
                         "optimization, add_tokens); after a full replacement use 'mean' or 'random'")
    n_old, n_new = len(old_tokenizer), len(new_tokenizer)
    if model.get_input_embeddings().weight.shape[0] < n_old:
        raise VocabError(f"the model has fewer embedding rows than the old tokenizer has tokens ({n_old})")
    tied = is_tied(model)
    old_in = model.get_input_embeddings().weight.detach().clone()
    head = model.get_output_embeddings()
    old_out = None if tied or head is None else head.weight.detach().clone()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if model.get_input_embeddings().weight.shape[0] != n_old:
            model.resize_token_embeddings(n_old, mean_resizing=False)
        if init == "mean_resize" or (init == "random" and appended):
            model.resize_token_embeddings(n_new, mean_resizing=init == "mean_resize")
        else:
            mapping = subtoken_map(old_tokenizer, new_tokenizer)
            std = getattr(model.config.get_text_config(), "initializer_range", 0.02)
            rows = [_new_rows(mapping, old_in, init, std)]
            if old_out is not None:
                rows.append(_new_rows(mapping, old_out, init, std))
            model.resize_token_embeddings(n_new, mean_resizing=False)
            with torch.no_grad():
                model.get_input_embeddings().weight.copy_(rows[0])
                if old_out is not None:
                    model.get_output_embeddings().weight.copy_(rows[1])
    if tied and not is_tied(model):
        model.tie_weights()
    _follow_tokenizer(model, old_tokenizer, new_tokenizer)
    return model


def _new_rows(mapping: SubtokenMap, old, init: str, std: float):
    """``mean``: phi(old). ``random`` after a full replacement: rows of tokens whose string the old
    vocabulary has are kept, the rest drawn from normal(0, initializer_range) as the model's
    own ``_init_weights`` does."""
    import torch

    if init == "mean":
        return mapping.apply(old)
    rows = torch.empty(mapping.n_new, old.shape[1], dtype=torch.float32).normal_(0.0, std).to(old.dtype)
    rows[mapping.same] = old[mapping.ids[mapping.offsets[:-1][mapping.same]]]
    return rows


def _follow_tokenizer(model, old_tokenizer, new_tokenizer) -> None:
    new_vocab = new_tokenizer.get_vocab()
    n_new = len(new_tokenizer)
    text_config = model.config.get_text_config()
    text_config.vocab_size = n_new
    model.config.vocab_size = n_new
    configs = [model.config, getattr(model, "generation_config", None)]
    for config in [c for c in configs if c is not None]:
        for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(config, key, None)
            if value is None:
                continue
            ids = value if isinstance(value, list) else [value]
            mapped = []
            for old_id in ids:
                token = old_tokenizer.convert_ids_to_tokens(int(old_id))
                if token not in new_vocab:
                    raise VocabError(f"{key} {old_id} ({token!r}) is missing from the new tokenizer")
                mapped.append(new_vocab[token])
            setattr(config, key, mapped if isinstance(value, list) else mapped[0])
