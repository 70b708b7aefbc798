"""Language-model metrics: bits per character/byte, perplexity, tokenizer fertility.

Bits per character (bpc) is the tokenizer-independent number to compare models
that split text differently (an adapted vocabulary against the original one):
the summed negative log-likelihood of every token of the text, in bits, divided
by the number of characters of the text. Perplexity is reported too, but it is
per token and so only comparable between models that share a tokenizer.

Scoring rules (``score_texts``):

- each text is a separate document, preceded by one context prefix (see
  ``document_prefix_ids``) so that its first token is predicted as well;
- every token of every document is predicted exactly once; documents longer
  than ``max_length`` are scored with a sliding window: the first window
  predicts up to ``max_length`` tokens, each later one ``stride`` new tokens
  and sees the ``max_length - stride`` tokens before them as context only;
- windows of all documents are sorted by length and batched with right padding
  and an attention mask; only the positions that predict new tokens are
  projected onto the vocabulary.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lib import progress as run_progress  # `progress` is the tqdm flag of the scoring functions

LN2 = math.log(2.0)
_ENDOFTEXT = "<|endoftext|>"
_CE_CHUNK = 1024  # rows of logits per cross-entropy call, to bound the peak memory


@dataclass(frozen=True)
class LMScore:
    """Summed NLL of a corpus and the counts needed to normalise it.

    Scores of disjoint parts of a corpus add up (``a + b``, ``LMScore.merge``,
    ``sum(parts)``) to the score of the whole, as every field is a sum.
    """

    total_nll_nats: float
    n_tokens: int  # predicted tokens (the document prefix is never predicted)
    n_chars: int  # characters of the texts themselves (no prefix)
    n_bytes: int  # UTF-8 bytes of the texts
    n_words: int  # whitespace-separated words
    n_docs: int  # non-empty documents scored

    @property
    def nll_per_token(self) -> float:
        return self.total_nll_nats / self.n_tokens if self.n_tokens else math.nan

    @property
    def bits_per_token(self) -> float:
        return self.nll_per_token / LN2

    @property
    def bits_per_char(self) -> float:
        return self.total_nll_nats / LN2 / self.n_chars if self.n_chars else math.nan

    @property
    def bits_per_byte(self) -> float:
        return self.total_nll_nats / LN2 / self.n_bytes if self.n_bytes else math.nan

    @property
    def perplexity(self) -> float:
        """exp of the mean token NLL (per token: only comparable under one tokenizer)."""
        mean = self.nll_per_token
        if math.isnan(mean):
            return math.nan
        return math.exp(mean) if mean < 700 else math.inf

    @property
    def chars_per_token(self) -> float:
        return self.n_chars / self.n_tokens if self.n_tokens else math.nan

    @property
    def tokens_per_word(self) -> float:
        return self.n_tokens / self.n_words if self.n_words else math.nan

    def to_dict(self) -> dict[str, Any]:
        """All fields and derived metrics; undefined ratios (0 denominators) become None."""
        out: dict[str, Any] = asdict(self)
        for name in ("bits_per_char", "bits_per_byte", "perplexity", "bits_per_token",
                     "nll_per_token", "chars_per_token", "tokens_per_word"):
            value = getattr(self, name)
            out[name] = None if math.isnan(value) else value
        return out

    @staticmethod
    def merge(*scores: LMScore) -> LMScore:
        if not scores:
            raise ValueError("merge needs at least one LMScore")
        return LMScore(
            total_nll_nats=math.fsum(s.total_nll_nats for s in scores),
            n_tokens=sum(s.n_tokens for s in scores),
            n_chars=sum(s.n_chars for s in scores),
            n_bytes=sum(s.n_bytes for s in scores),
            n_words=sum(s.n_words for s in scores),
            n_docs=sum(s.n_docs for s in scores),
        )

    def __add__(self, other: LMScore) -> LMScore:
        if not isinstance(other, LMScore):
            return NotImplemented
        return LMScore.merge(self, other)

    def __radd__(self, other: Any) -> LMScore:
        # lets sum(parts) start from its default 0
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented


def document_prefix_ids(tokenizer) -> list[int]:
    """The token id(s) put before every document so that its first token is predicted.

    Choice: the BOS token when the tokenizer adds one by itself (the model was
    trained to see it at the start of every sequence); otherwise
    ``<|endoftext|>`` when the vocabulary has it (GPT-2 style and SmolLM2
    tokenizers add no BOS, and their pretraining separates packed documents
    with it; note SmolLM2's GGUF-converted ``bos_token`` is ``<|im_start|>``,
    a chat marker, which is why "has a bos_token" is not the test); otherwise
    the EOS token, the usual document separator in packed pretraining.
    """
    probe = "a"
    with_special = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    without = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    if bos is not None and len(with_special) > len(without) and with_special[0] == bos:
        return [bos]
    vocab = tokenizer.get_vocab()
    if _ENDOFTEXT in vocab:
        return [vocab[_ENDOFTEXT]]
    if tokenizer.eos_token_id is not None:
        return [tokenizer.eos_token_id]
    raise ValueError(
        "tokenizer adds no BOS token, has no <|endoftext|> token and no EOS token: "
        "no document prefix to condition the first token on"
    )


@dataclass(frozen=True)
class Window:
    """One forward pass: ``input_ids`` predict ``labels``; the last ``n_targets`` count."""

    input_ids: list[int]
    labels: list[int]  # labels[i] is the token after input_ids[i]
    n_targets: int


def sliding_windows(ids: Sequence[int], n_prefix: int, max_length: int,
                    stride: int) -> list[Window]:
    """Split one document ``ids`` (prefix included) into windows of at most ``max_length``
    input tokens that together predict every position from ``n_prefix`` on exactly once.

    The first window predicts up to ``max_length`` tokens; each later one the next
    ``stride`` tokens, with the ``max_length - stride`` tokens before them as context.
    """
    _check_window_args(max_length, stride)
    length = len(ids)
    windows: list[Window] = []
    start = n_prefix  # first position (in ids) not yet predicted
    end = min(length, max_length + 1)  # first window: inputs ids[0:max_length]
    while start < length:
        # Predicting ids[start:end] needs inputs up to ids[end - 2]; take up to
        # max_length of them, ending there.
        lo = max(0, end - 1 - max_length)
        windows.append(Window(list(ids[lo:end - 1]), list(ids[lo + 1:end]), end - start))
        start, end = end, min(length, end + stride)
    return windows


def _check_window_args(max_length: int, stride: int) -> None:
    if not isinstance(max_length, int) or max_length <= 0:
        raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
    if not isinstance(stride, int) or stride <= 0:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    if stride > max_length:
        raise ValueError(
            f"stride ({stride}) must not exceed max_length ({max_length}): a window "
            f"cannot predict more new tokens than it holds"
        )


def check_score_args(*, max_length: int, stride: int, batch_size: int) -> None:
    """Validate the scoring settings (callers may run this before loading a model)."""
    _check_window_args(max_length, stride)
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a sequence of strings (one per document), not a "
                        "single string; wrap it in a list")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
    if not texts:
        raise ValueError("no texts to score: the list of documents is empty")
    if not any(texts):
        raise ValueError(f"no text to score: all {len(texts)} documents are empty strings")
    return texts


def _text_counts(texts: Sequence[str]) -> dict[str, int]:
    return dict(
        n_chars=sum(len(t) for t in texts),
        n_bytes=sum(len(t.encode("utf-8")) for t in texts),
        n_words=sum(len(t.split()) for t in texts),
    )


def _context_limit(model) -> int | None:
    config = model.config
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    return getattr(config, "max_position_embeddings", None)


def score_texts(model, tokenizer, texts: Sequence[str], *, max_length: int = 1024,
                stride: int = 512, batch_size: int = 8, progress: bool = False) -> LMScore:
    """Score each text as a separate document; return the summed NLL and counts.

    See the module docstring for the rules. Empty strings in ``texts`` are skipped
    (they have nothing to predict) and not counted in ``n_docs``. Memory: a batch
    of first windows holds ``batch_size * max_length * vocab`` float logits
    (8 x 1024 x 262k x 4 B = 8.6 GB for Gemma 3); lower batch_size for big vocabularies.
    """
    import torch
    import torch.nn.functional as F
    from torch.nn.utils.rnn import pad_sequence
    from tqdm import tqdm

    texts = _check_texts(texts)
    check_score_args(max_length=max_length, stride=stride, batch_size=batch_size)
    limit = _context_limit(model)
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length ({max_length}) exceeds the model's context "
                         f"({limit} positions)")

    docs = [t for t in texts if t]
    prefix = document_prefix_ids(tokenizer)
    encoded = tokenizer(docs, add_special_tokens=False, verbose=False)["input_ids"]
    windows = [w for ids in encoded
               for w in sliding_windows(prefix + list(ids), len(prefix), max_length, stride)]
    # Longest first: batches of similar lengths waste little padding, and a batch
    # too big for memory fails at once rather than at the end.
    windows.sort(key=lambda w: len(w.input_ids), reverse=True)

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    n_tokens = 0
    batches = range(0, len(windows), batch_size)
    with torch.inference_mode():
        bars = tqdm(batches, desc="scoring", unit="batch", disable=not progress, file=sys.stderr)
        for first in run_progress.track(bars, "scoring", total=len(batches), unit="batch"):
            batch = windows[first:first + batch_size]
            lengths = torch.tensor([len(w.input_ids) for w in batch])
            n_targets = torch.tensor([w.n_targets for w in batch])
            input_ids = pad_sequence([torch.tensor(w.input_ids) for w in batch],
                                     batch_first=True, padding_value=pad_id)
            labels = pad_sequence([torch.tensor(w.labels) for w in batch], batch_first=True)
            position = torch.arange(input_ids.shape[1])[None, :]
            attention = (position < lengths[:, None]).long()
            keep = (position < lengths[:, None]) & (position >= (lengths - n_targets)[:, None])
            keep = keep.to(device)
            # A boolean 2-D logits_to_keep makes transformers project only the kept
            # positions onto the vocabulary, flattened to (n_kept, vocab).
            inputs = dict(input_ids=input_ids.to(device), attention_mask=attention.to(device))
            try:
                logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
            except TypeError:  # a model whose forward takes no logits_to_keep
                logits = model(**inputs).logits
            if logits.dim() == 3:  # all positions came back: keep ours
                logits = logits[keep]
            targets = labels.to(device)[keep]
            for part_logits, part_targets in zip(logits.split(_CE_CHUNK),
                                                 targets.split(_CE_CHUNK), strict=True):
                nll = F.cross_entropy(part_logits.float(), part_targets, reduction="none")
                total += nll.sum(dtype=torch.float64).cpu()
            n_tokens += int(targets.numel())

    return LMScore(total_nll_nats=float(total), n_tokens=n_tokens, n_docs=len(docs),
                   **_text_counts(docs))


def fertility(tokenizer, texts: Sequence[str]) -> dict[str, float | int]:
    """Tokenizer fertility without a model: characters per token, tokens per word.

    Special tokens are not counted; words are whitespace-separated.
    """
    texts = _check_texts(texts)
    encoded = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    n_tokens = sum(len(ids) for ids in encoded)
    counts = _text_counts(texts)
    return dict(
        chars_per_token=counts["n_chars"] / n_tokens if n_tokens else math.nan,
        tokens_per_word=n_tokens / counts["n_words"] if counts["n_words"] else math.nan,
        n_tokens=n_tokens,
        n_chars=counts["n_chars"],
        n_words=counts["n_words"],
    )
