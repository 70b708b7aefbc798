"""Tokenizer strategies: a registry of named functions, each with its parameters as keyword defaults.

    new = build_tokenizer(old, train_texts, "extension", vocab_size=8000)

Adding a strategy is adding one function decorated with ``@strategy``. Each takes the old fast
tokenizer and the training texts (the corpus train split) and returns a new fast tokenizer of
the same kind (see ``lib.vocab.backend``) that keeps the old special tokens and chat template.

- ``bpe`` / ``unigram`` (LEP's BPE and Unigram): full replacement; ``vocab_size`` counts every
  token (special and byte tokens included). Special tokens keep their text, not their ids.
- ``extension`` (LEP's "Extended"): a ``vocab_size`` BPE trained on the texts; its tokens missing
  from the old vocabulary are appended, its merges come first (``lib.vocab.extend``).
- ``optimization`` (LEP's "Optimized"). The paper does not define it; its authors' code names
  such tokenizers ``cut_extended`` and cuts an extended vocabulary back to a size (dropping ids
  above N and the merges that need them). Our reading: extension, then the appended tokens
  least used on a mixed sample (target texts and ``english_texts``, ``sample_chars`` of each)
  are dropped until ``target_size`` tokens remain (default: the old size plus half the
  appended tokens); old, byte and special tokens always stay. Replace ``optimization`` here if
  the paper's meaning becomes known.
- ``add_tokens`` (LlamaTurk's v): the ``n_tokens`` most frequent tokens of a ``vocab_size`` BPE
  trained on the texts that the old tokenizer lacks, added with ``tokenizer.add_tokens``: they
  are matched in raw text before the old BPE runs.
"""

from __future__ import annotations

import functools
import inspect
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from lib.vocab.backend import (
    METASPACE,
    VocabError,
    added_contents,
    backend_json,
    copy_spec,
    from_json,
    next_free_id,
    remap_added_tokens,
    to_fast,
    tokenizer_kind,
)
from lib.vocab.extend import cut, extend, require_bpe
from lib.vocab.train import check_texts, train_model, trainer_pipeline, with_bytes

BYTE_ALPHABET = 256
STRATEGIES: dict[str, Callable[..., Any]] = {}


def strategy(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register ``fn`` under its name; its keyword-only defaults are the strategy's parameters."""
    STRATEGIES[fn.__name__] = fn
    return fn


def strategy_params(name: str) -> dict[str, Any]:
    """The parameters of a strategy and their defaults."""
    fn = _lookup(name)
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "english_texts"}


def build_tokenizer(old_tokenizer, texts: Sequence[str], strategy_name: str, *,
                    english_texts: Sequence[str] = (), **params: Any):
    """A new fast tokenizer by ``strategy_name``; unknown parameters are an error that names them."""
    known = strategy_params(strategy_name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise VocabError(f"unknown parameter(s) {unknown} for strategy {strategy_name!r}; it takes {sorted(known)}")
    return STRATEGIES[strategy_name](old_tokenizer, check_texts(texts), english_texts=english_texts, **params)


def _lookup(name: str) -> Callable[..., Any]:
    if name not in STRATEGIES:
        raise VocabError(f"unknown tokenizer strategy {name!r}; choose one of {sorted(STRATEGIES)}")
    return STRATEGIES[name]


def check_vocab_size(vocab_size: Any, n_special: int, what: str = "vocab_size") -> None:
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise VocabError(f"{what} must be an integer, got {vocab_size!r}")
    floor = BYTE_ALPHABET + n_special
    if vocab_size <= floor:
        raise VocabError(f"{what} {vocab_size} is too small: the byte alphabet ({BYTE_ALPHABET}) and the "
                         f"{n_special} special tokens alone take {floor}")


# ---------------------------------------------------------------- full replacement


@strategy
def bpe(old_tokenizer, texts, *, english_texts=(), vocab_size: int = 32000, min_frequency: int = 2):
    return _replace(old_tokenizer, texts, "bpe", vocab_size, min_frequency=min_frequency)


@strategy
def unigram(old_tokenizer, texts, *, english_texts=(), vocab_size: int = 32000, max_piece_length: int = 16):
    return _replace(old_tokenizer, texts, "unigram", vocab_size, max_piece_length=max_piece_length)


def _replace(old_tokenizer, texts, model: str, vocab_size: int, **train_args):
    spec = backend_json(old_tokenizer)
    kind = tokenizer_kind(spec)
    specials = added_contents(spec)
    check_vocab_size(vocab_size, len(specials))
    n_bytes = BYTE_ALPHABET if kind == "sentencepiece" else 0  # byte-level: the bytes are the alphabet
    trained = train_model(spec, texts, model=model, vocab_size=vocab_size - n_bytes, special_tokens=specials,
                          **train_args)
    old_model = spec["model"]
    if kind == "sentencepiece":
        trained = with_bytes(trained, specials)
    unk = old_model.get("unk_token")
    if unk is None and old_model.get("unk_id") is not None and old_model["type"] == "Unigram":
        unk = old_model["vocab"][old_model["unk_id"]][0]
    if model == "bpe":
        trained["unk_token"] = unk if unk in trained["vocab"] else None
        token_to_id = dict(trained["vocab"])
    else:
        pieces = [p for p, _ in trained["vocab"]]
        trained["unk_id"] = pieces.index(unk) if unk in pieces else None
        token_to_id = {p: i for i, p in enumerate(pieces)}
    new = copy_spec(spec)
    new["model"] = trained
    remap_added_tokens(new, token_to_id)
    return to_fast(new, old_tokenizer)


# ---------------------------------------------------------------- extension and its cut


@strategy
def extension(old_tokenizer, texts, *, english_texts=(), vocab_size: int = 8000, min_frequency: int = 2):
    spec = backend_json(old_tokenizer)
    extended, _ = _extended(spec, texts, vocab_size, min_frequency)
    return to_fast(extended, old_tokenizer)


@strategy
def optimization(old_tokenizer, texts, *, english_texts=(), vocab_size: int = 8000, min_frequency: int = 2,
                 target_size: int | None = None, sample_chars: int = 1_000_000):
    english_texts = [t for t in english_texts if t]
    if not english_texts:
        raise VocabError("optimization counts token use on a mixed target-language and English sample: "
                         "pass english_texts (e.g. the English corpus train split)")
    for name, value in (("target_size", target_size), ("sample_chars", sample_chars)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise VocabError(f"{name} must be a positive integer, got {value!r}")
    spec = backend_json(old_tokenizer)
    first_new = next_free_id(spec)
    extended, n_new = _extended(spec, texts, vocab_size, min_frequency)
    if target_size is None:
        target_size = first_new + n_new // 2
    sample = _head(texts, sample_chars) + _head(english_texts, sample_chars)
    counts = Counter(i for enc in from_json(extended).encode_batch(sample, add_special_tokens=False) for i in enc.ids)
    return to_fast(cut(extended, first_new, counts, target_size), old_tokenizer)


def _extended(spec: dict[str, Any], texts, vocab_size: int, min_frequency: int) -> tuple[dict[str, Any], int]:
    tokenizer_kind(spec)
    require_bpe(spec, "extension")
    check_vocab_size(vocab_size, len(added_contents(spec)))
    trained = train_model(spec, texts, model="bpe", vocab_size=vocab_size, min_frequency=min_frequency)
    return extend(spec, trained)


def _head(texts: Sequence[str], n_chars: int) -> list[str]:
    """The first texts up to ``n_chars`` characters (the corpus order is already shuffled by hash)."""
    out, total = [], 0
    for text in texts:
        if total >= n_chars:
            break
        out.append(text[:n_chars - total])
        total += len(out[-1])
    return out


# ---------------------------------------------------------------- added tokens


@strategy
def add_tokens(old_tokenizer, texts, *, english_texts=(), n_tokens: int = 1000, vocab_size: int = 8000,
               min_frequency: int = 2):
    from tokenizers import AddedToken

    spec = backend_json(old_tokenizer)
    kind = tokenizer_kind(spec)
    check_vocab_size(vocab_size, len(added_contents(spec)))
    if not isinstance(n_tokens, int) or isinstance(n_tokens, bool) or n_tokens <= 0:
        raise VocabError(f"n_tokens must be a positive integer, got {n_tokens!r}")
    candidates = _candidates(old_tokenizer, spec, kind, texts, vocab_size, min_frequency)
    if len(candidates) < n_tokens:
        raise VocabError(f"corpus too small: a {vocab_size}-token BPE of the texts offers only {len(candidates)} new "
                         f"tokens, {n_tokens} were asked; lower n_tokens or give more text")
    if kind == "sentencepiece":
        spec = prefix_first_only(spec)
    new = to_fast(spec, old_tokenizer)
    # matched in the raw text, before the old normaliser and BPE run
    new.add_tokens([AddedToken(t, normalized=False, special=False) for t in candidates[:n_tokens]])
    return new


def _candidates(old_tokenizer, spec, kind: str, texts, vocab_size: int, min_frequency: int) -> list[str]:
    """Texts of the trained tokens the old vocabulary lacks, most frequent on ``texts`` first.

    Skipped: pieces that are not whole characters, whitespace, and (byte-level) strings that
    the ByteLevel decoder would garble: it maps Latin-1 and some Latin Extended-A letters back
    to single bytes (``ağaç`` would decode to junk); a space or any other character outside
    its alphabet makes it keep the text.
    """
    trained = train_model(spec, texts, model="bpe", vocab_size=vocab_size, min_frequency=min_frequency)
    tokenizer = from_json({**trainer_pipeline(spec, kind), "model": trained})
    counts = Counter(i for enc in tokenizer.encode_batch(texts, add_special_tokens=False) for i in enc.ids)
    id_to_token = {i: t for t, i in trained["vocab"].items()}
    old_vocab = old_tokenizer.get_vocab()
    decoder = from_json(spec).decoder
    out = []
    for token_id, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        token = id_to_token[token_id]
        text = _piece_text(token, kind)
        if token in old_vocab or not text or not text.strip():
            continue
        if decoder is not None and decoder.decode(["x", text]) != "x" + text:
            continue
        out.append(text)
    return out


def _piece_text(token: str, kind: str) -> str | None:
    """The text a trained piece stands for; None when it is part of a character."""
    if kind == "sentencepiece":
        return token.replace(METASPACE, " ")
    try:
        return bytes(_byte_of()[c] for c in token).decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return None


@functools.cache
def _byte_of() -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode  # GPT-2's byte map, as ByteLevel uses

    return {c: b for b, c in bytes_to_unicode().items()}


def prefix_first_only(spec: dict[str, Any]) -> dict[str, Any]:
    """A SentencePiece-style pipeline that adds its dummy ``▁`` to the start of the text only.

    Legacy layouts (a ``Prepend`` normaliser, or Metaspace ``always``) prefix every stretch of
    text between added tokens, which decodes to a space after every added token. Metaspace
    ``first`` (transformers' non-legacy Llama layout) prefixes the start only. What changes for
    text without added tokens: a text that starts with a space loses it in the round trip, and
    text right after a special token gets no dummy prefix.
    """
    out = copy_spec(spec)

    def keep(node: dict[str, Any]) -> bool:
        regex = (node.get("pattern") or {}).get("Regex", "")
        return node.get("type") != "Prepend" and not (node.get("type") == "Replace" and regex.startswith("\\A"))

    norm = out.get("normalizer")
    if isinstance(norm, dict) and norm.get("type") == "Sequence":
        norm["normalizers"] = [n for n in norm["normalizers"] if keep(n)]
    elif isinstance(norm, dict) and not keep(norm):
        out["normalizer"] = None
    pre = out.get("pre_tokenizer")
    members = pre["pretokenizers"] if isinstance(pre, dict) and pre.get("type") == "Sequence" else [pre] if pre else []
    metaspaces = [m for m in members if m.get("type") == "Metaspace"]
    for member in metaspaces:
        member["prepend_scheme"] = "first"
    if not metaspaces:
        meta = {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "first", "split": False}
        out["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [*members, meta]}
    return out
