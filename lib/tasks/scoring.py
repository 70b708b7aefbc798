"""Log-likelihood scoring of multiple-choice requests, batched, with shared-context reuse.

A request is ``prefix + context`` followed by one of several ``options``; its
score is, per option, the summed log-probability of the option's tokens given
everything before them (the rule of lm-evaluation-harness' ``loglikelihood``).

Two kinds of reuse make this cheap (``score_choices``):

- **The context is run once per item, not once per option.** An item is packed
  into one row ``[context | option 1 | option 2 | ...]`` with an attention mask
  in which every option sees the context and itself but not the other options,
  and position ids that restart after the context for each option. One forward
  pass scores every option; only the positions that predict option tokens are
  projected onto the vocabulary.
- **A prefix shared by many items (the few-shot examples) is run once.** Its
  key/value cache is computed once per group of requests with the same prefix
  and reused (expanded over the batch) by every batch of that group.

``score_choices_naive`` scores every (item, option) pair as its own sequence, as
a model without either kind of reuse would; it exists as the reference that the
tests compare against and that ``scripts/bench_mc_scoring.py`` times.

Both functions tokenise identically (``encode_requests``), so their results
agree to float rounding.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from lib import progress as run_progress  # `progress` is the tqdm flag of the scoring functions
from lib.lm_metrics import document_prefix_ids

_SUPPORTED_LAYERS = {"full_attention", "sliding_attention"}
_LSE_ROWS = 256  # logits rows per log-sum-exp chunk


@dataclass(frozen=True)
class ChoiceRequest:
    """Score ``prefix + context + option`` for every option."""

    context: str
    options: tuple[str, ...]
    prefix: str = ""  # text before the context shared by many requests (few-shot examples)

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError("a ChoiceRequest needs at least one option")
        if any(not option for option in self.options):
            raise ValueError(f"empty option in {self.options!r}: it would have no token to score")


@dataclass(frozen=True)
class OptionScore:
    logprob: float  # summed log-probability of the option's tokens, in nats
    n_tokens: int


@dataclass(frozen=True)
class _Encoded:
    prefix: tuple[int, ...]  # document prefix (BOS) + the shared prefix text
    context: tuple[int, ...]
    options: tuple[tuple[int, ...], ...]


def _continuation_ids(tokenizer, heads: list[str], tails: list[str],
                      head_ids: list[list[int]]) -> list[list[int]]:
    """Token ids of each ``tail`` as the model sees it after its ``head``.

    Encoding ``head + tail`` and cutting off the head's tokens keeps the tokens
    that a tokenizer merges across the boundary where a model would see them;
    when the head's tokens change under the join, the tail is encoded alone.
    """
    joined = tokenizer([h + t for h, t in zip(heads, tails)], add_special_tokens=False,
                       verbose=False)["input_ids"]
    out = []
    for whole, head, tail in zip(joined, head_ids, tails):
        if len(whole) > len(head) and list(whole[:len(head)]) == list(head):
            out.append(list(whole[len(head):]))
        else:
            out.append(list(tokenizer(tail, add_special_tokens=False)["input_ids"]))
    return out


def encode_requests(tokenizer, requests: Sequence[ChoiceRequest]) -> list[_Encoded]:
    requests = list(requests)
    doc = document_prefix_ids(tokenizer)
    prefixes = sorted({r.prefix for r in requests})
    prefix_ids = dict(zip(prefixes, tokenizer(prefixes, add_special_tokens=False,
                                              verbose=False)["input_ids"]))
    contexts = _continuation_ids(tokenizer, [r.prefix for r in requests],
                                 [r.context for r in requests],
                                 [prefix_ids[r.prefix] for r in requests])
    heads, tails, head_ids, owner = [], [], [], []
    for i, (request, ctx) in enumerate(zip(requests, contexts)):
        for option in request.options:
            heads.append(request.prefix + request.context)
            tails.append(option)
            head_ids.append(list(prefix_ids[request.prefix]) + ctx)
            owner.append(i)
    options = _continuation_ids(tokenizer, heads, tails, head_ids)
    grouped: list[list[tuple[int, ...]]] = [[] for _ in requests]
    for i, ids in zip(owner, options):
        grouped[i].append(tuple(ids))
    return [_Encoded(tuple(doc + list(prefix_ids[r.prefix])), tuple(ctx), tuple(opts))
            for r, ctx, opts in zip(requests, contexts, grouped)]


# ---------------------------------------------------------------- packed scoring


def _layer_types(model) -> list[str]:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
    unknown = set(types) - _SUPPORTED_LAYERS
    if unknown:
        raise NotImplementedError(f"packed scoring does not support layer types {sorted(unknown)}; "
                                  f"use score_choices_naive")
    return list(types)


def _sliding_window(model) -> int | None:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return getattr(config, "sliding_window", None)


def _check_attention(model) -> None:
    impl = getattr(model.config, "_attn_implementation", "eager")
    if impl not in ("sdpa", "eager"):
        raise NotImplementedError(
            f"packed scoring needs a custom 4-D attention mask, which the {impl!r} attention "
            f"implementation does not take; load the model with attn_implementation='sdpa'"
        )


@dataclass
class _Layout:
    """Where one request sits in a packed row."""

    index: int  # request index
    context_end: int  # row offset of the last context token (it predicts every option's first token)
    option_spans: list[tuple[int, int]]  # [start, end) row offsets of each option


@dataclass
class _Row:
    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # relative to the end of the cached prefix
    slots: list[int] = field(default_factory=list)  # which request of the row a token belongs to
    parts: list[int] = field(default_factory=list)  # 0 = context, j + 1 = option j
    layouts: list[_Layout] = field(default_factory=list)

    def add(self, enc: _Encoded, index: int, inline_prefix: bool) -> None:
        context = (list(enc.prefix) if inline_prefix else []) + list(enc.context)
        if not context:
            raise ValueError("a request with an empty prefix and context cannot be scored")
        slot, base = len(self.layouts), len(self.tokens)
        self.tokens += context
        self.positions += range(len(context))
        self.parts += [0] * len(context)
        spans = []
        for j, option in enumerate(enc.options):
            start = len(self.tokens)
            self.tokens += option
            self.positions += range(len(context), len(context) + len(option))
            self.parts += [j + 1] * len(option)
            spans.append((start, len(self.tokens)))
        self.slots += [slot] * (len(self.tokens) - base)
        self.layouts.append(_Layout(index, base + len(context) - 1, spans))


def _packed_length(enc: _Encoded, inline_prefix: bool) -> int:
    return (len(enc.prefix) if inline_prefix else 0) + len(enc.context) + sum(map(len, enc.options))


def _pack_rows(encoded: list[_Encoded], members: list[int], inline_prefix: bool,
               row_tokens: int) -> list[_Row]:
    """First-fit decreasing: requests share rows of about ``row_tokens`` tokens, so that
    batches hold almost no padding; a longer request gets a row of its own."""
    order = sorted(members, key=lambda i: _packed_length(encoded[i], inline_prefix), reverse=True)
    rows: list[_Row] = []
    for i in order:
        length = _packed_length(encoded[i], inline_prefix)
        row = next((r for r in rows if len(r.tokens) + length <= row_tokens), None)
        if row is None:
            row = _Row()
            rows.append(row)
        row.add(encoded[i], i, inline_prefix)
    return rows


def _masks(rows: list[_Row], n_cached: int, layer_types: list[str], window: int | None,
           dtype, device):
    """Additive 4-D masks (batch, 1, query, cached + query), one per layer type.

    A token sees the cached prefix, and within its row only earlier tokens of
    its own request that are context or of its own option.
    """
    import torch

    width = max(len(r.tokens) for r in rows)
    slot = torch.full((len(rows), width), -1, dtype=torch.long)
    part = torch.zeros((len(rows), width), dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        n = len(row.tokens)
        slot[b, :n] = torch.tensor(row.slots)
        part[b, :n] = torch.tensor(row.parts)
        pos[b, :n] = torch.tensor(row.positions)
    index = torch.arange(width)
    real = slot >= 0
    within = (index[None, None, :] <= index[None, :, None]) & real[:, None, :] & real[:, :, None]
    within &= slot[:, None, :] == slot[:, :, None]
    within &= (part[:, None, :] == 0) | (part[:, None, :] == part[:, :, None])
    within |= torch.eye(width, dtype=torch.bool)[None]  # padding attends to itself: no empty row
    absolute = pos + n_cached
    masks = {}
    for kind in sorted(set(layer_types)):
        sliding = kind == "sliding_attention" and window
        prefix_positions = torch.arange(n_cached)
        if sliding and n_cached:
            # a sliding layer's cache keeps only the last window - 1 prefix tokens
            prefix_positions = prefix_positions[-(window - 1):]
        allowed_prefix = real[:, :, None].expand(-1, -1, len(prefix_positions))
        allowed_row = within
        if sliding:
            allowed_prefix = allowed_prefix & ((absolute[:, :, None] - prefix_positions[None, None, :]) < window)
            allowed_row = within & ((absolute[:, :, None] - absolute[:, None, :]) < window)
        allowed = torch.cat([allowed_prefix, allowed_row], dim=2)
        mask = torch.zeros(allowed.shape, dtype=dtype)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        masks[kind] = mask[:, None].to(device)
    return masks


def _prefix_cache(model, prefix: tuple[int, ...], device):
    import torch

    out = model(input_ids=torch.tensor([prefix], device=device), use_cache=True, logits_to_keep=1)
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    return [(layer.keys, layer.values) for layer in cache.layers]


def _expanded_cache(model, layers, batch: int):
    from transformers import DynamicCache

    data = [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in layers]
    return DynamicCache(data, config=model.config)


def _forward_rows(model, rows: list[_Row], prefix_layers, n_cached: int, pad_id: int,
                  layer_types: list[str], window: int | None) -> dict[int, list[OptionScore]]:
    import torch

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    width = max(len(r.tokens) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    keep = torch.zeros((len(rows), width), dtype=torch.bool)
    for b, row in enumerate(rows):
        ids[b, :len(row.tokens)] = torch.tensor(row.tokens)
        positions[b, :len(row.tokens)] = torch.tensor(row.positions) + n_cached
        for layout in row.layouts:
            keep[b, layout.context_end] = True
            for start, end in layout.option_spans:
                keep[b, start:end - 1] = True  # an option's last token predicts nothing we score
    masks = _masks(rows, n_cached, layer_types, window, dtype, device)
    mask = masks if "sliding_attention" in masks else masks["full_attention"]
    kwargs = {}
    if prefix_layers is not None:
        kwargs["cache"] = _expanded_cache(model, prefix_layers, len(rows))
    logits = model(input_ids=ids.to(device), attention_mask=mask, position_ids=positions.to(device),
                   logits_to_keep=keep.to(device), use_cache=prefix_layers is not None, **kwargs).logits
    if logits.dim() == 3:  # a model that ignores logits_to_keep
        logits = logits[keep.to(device)]
    flat = torch.full((len(rows), width), -1, dtype=torch.long)  # kept (row, offset) -> logits row
    flat[keep] = torch.arange(int(keep.sum()))
    predictors, targets, owners = [], [], []
    for b, row in enumerate(rows):
        for layout in row.layouts:
            for start, end in layout.option_spans:
                predictors += [int(flat[b, layout.context_end])] + flat[b, start:end - 1].tolist()
                targets += row.tokens[start:end]
                owners.append((layout.index, end - start))
    picked = _target_logprobs(logits, predictors, targets).split([n for _, n in owners])
    results: dict[int, list[OptionScore]] = {}
    for (index, n), part in zip(owners, picked):
        results.setdefault(index, []).append(OptionScore(float(part.sum(dtype=torch.float64)), n))
    return results


def _target_logprobs(logits, rows: list[int], targets: list[int]):
    """log p(target) for each (logits row, target) pair: the row's logit of the target minus the
    row's log-sum-exp, in float32, a chunk of rows at a time (a 262k vocabulary makes the full
    float32 log-softmax of a batch gigabytes large)."""
    import torch

    lse = torch.cat([torch.logsumexp(part.float(), dim=-1) for part in logits.split(_LSE_ROWS)])
    rows_t = torch.tensor(rows, device=logits.device)
    targets_t = torch.tensor(targets, device=logits.device)
    return logits[rows_t, targets_t].float() - lse[rows_t]


def _batches(rows: list[_Row], max_batch_tokens: int, n_cached: int):
    """Longest first, about ``max_batch_tokens`` padded tokens per forward pass (and at
    most four times that counting the cached prefix, which is expanded over the batch)."""
    rows = sorted(rows, key=lambda r: len(r.tokens), reverse=True)
    batch: list[_Row] = []
    for row in rows:
        width = len(batch[0].tokens) if batch else len(row.tokens)
        n = len(batch) + 1
        if batch and (n * width > max_batch_tokens or n * (width + n_cached) > 4 * max_batch_tokens):
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


def score_choices(model, tokenizer, requests: Sequence[ChoiceRequest], *, max_batch_tokens: int = 4096,
                  row_tokens: int = 512, progress: bool = False) -> list[list[OptionScore]]:
    """Score every option of every request (see the module doc).

    Requests are packed into rows of about ``row_tokens`` tokens (several
    requests per row, kept apart by the attention mask) and rows into forward
    passes of about ``max_batch_tokens`` tokens.
    """
    import torch
    from tqdm import tqdm

    _check_positive("max_batch_tokens", max_batch_tokens)
    _check_positive("row_tokens", row_tokens)
    _check_attention(model)
    layer_types = _layer_types(model)
    window = _sliding_window(model)
    requests = list(requests)
    encoded = encode_requests(tokenizer, requests)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, enc in enumerate(encoded):
        groups.setdefault(enc.prefix, []).append(i)
    results: list[list[OptionScore] | None] = [None] * len(requests)
    model.eval()
    bar = tqdm(total=len(requests), desc="scoring", unit="item", disable=not progress, file=sys.stderr)
    with torch.inference_mode(), run_progress.Bar("scoring", len(requests), unit="item") as run_bar:
        for prefix, members in groups.items():
            # A prefix used once is cheaper inline than as a cache of its own.
            shared = len(members) > 1
            layers = _prefix_cache(model, prefix, next(model.parameters()).device) if shared else None
            n_cached = len(prefix) if shared else 0
            rows = _pack_rows(encoded, members, not shared, row_tokens)
            longest = n_cached + max(max(r.positions) + 1 for r in rows)
            if window and "sliding_attention" not in layer_types and longest > window:
                raise NotImplementedError(
                    f"sequence of {longest} tokens exceeds the model's sliding window ({window}) "
                    f"and its config names no per-layer types; use score_choices_naive")
            for batch in _batches(rows, max_batch_tokens, n_cached):
                for index, scores in _forward_rows(model, batch, layers, n_cached, pad_id,
                                                   layer_types, window).items():
                    results[index] = scores
                bar.update(sum(len(r.layouts) for r in batch))
                run_bar.update(sum(len(r.layouts) for r in batch))
    bar.close()
    return results  # type: ignore[return-value]


# ---------------------------------------------------------------- naive reference


def score_choices_naive(model, tokenizer, requests: Sequence[ChoiceRequest], *,
                        max_batch_tokens: int = 4096, progress: bool = False) -> list[list[OptionScore]]:
    """Every (request, option) as its own right-padded sequence, no reuse at all;
    batched like ``score_choices``: longest first, about ``max_batch_tokens`` per pass."""
    import torch
    from torch.nn.utils.rnn import pad_sequence
    from tqdm import tqdm

    _check_positive("max_batch_tokens", max_batch_tokens)
    requests = list(requests)
    encoded = encode_requests(tokenizer, requests)
    seqs = []  # (request, option, ids, n_option_tokens)
    for i, enc in enumerate(encoded):
        for j, option in enumerate(enc.options):
            seqs.append((i, j, list(enc.prefix) + list(enc.context) + list(option), len(option)))
    seqs.sort(key=lambda s: len(s[2]), reverse=True)
    batches, batch = [], []
    for seq in seqs:
        if batch and (len(batch) + 1) * len(batch[0][2]) > max_batch_tokens:
            batches.append(batch)
            batch = []
        batch.append(seq)
    if batch:
        batches.append(batch)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    results: list[list[OptionScore | None]] = [[None] * len(e.options) for e in encoded]
    model.eval()
    with torch.inference_mode():
        bars = tqdm(batches, desc="naive scoring", unit="batch", disable=not progress, file=sys.stderr)
        for batch in run_progress.track(bars, "naive scoring", total=len(batches), unit="batch"):
            lengths = torch.tensor([len(s[2]) for s in batch])
            n_opt = torch.tensor([s[3] for s in batch])
            ids = pad_sequence([torch.tensor(s[2]) for s in batch], batch_first=True, padding_value=pad_id)
            position = torch.arange(ids.shape[1])[None, :]
            attention = (position < lengths[:, None]).long()
            # position p predicts token p + 1: keep the predictors of the option tokens
            keep = (position >= (lengths - n_opt - 1)[:, None]) & (position < (lengths - 1)[:, None])
            logits = model(input_ids=ids.to(device), attention_mask=attention.to(device),
                           logits_to_keep=keep.to(device), use_cache=False).logits
            if logits.dim() == 3:
                logits = logits[keep.to(device)]
            targets = [t for s in batch for t in s[2][len(s[2]) - s[3]:]]
            picked = _target_logprobs(logits, list(range(len(targets))), targets)
            for (i, j, _, n), part in zip(batch, picked.split([s[3] for s in batch])):
                results[i][j] = OptionScore(float(part.sum(dtype=torch.float64)), n)
    return results  # type: ignore[return-value]


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# ---------------------------------------------------------------- generation


def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = 16,
             stop: Sequence[str] = ("\n",), batch_size: int = 16) -> list[str]:
    """Greedy continuations of ``prompts`` (each a new document), cut at the first stop string."""
    from lib.generation import generate_ids

    _check_positive("batch_size", batch_size)
    prompts = list(prompts)
    doc = document_prefix_ids(tokenizer)
    encoded = [doc + ids for ids in tokenizer(prompts, add_special_tokens=False, verbose=False)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]), reverse=True)  # little padding
    texts = generate_ids(model, tokenizer, [encoded[i] for i in order], max_new_tokens=max_new_tokens,
                         batch_size=batch_size)
    outputs: list[str] = [""] * len(prompts)
    for i, text in zip(order, texts):
        outputs[i] = _cut(text, stop)
    return outputs


def _cut(text: str, stop: Sequence[str]) -> str:
    cut = len(text)
    for s in stop:
        at = text.find(s)
        if at >= 0:
            cut = min(cut, at)
    return text[:cut].strip()


def mean_logprob(score: OptionScore) -> float:
    return score.logprob / score.n_tokens if score.n_tokens else -math.inf
