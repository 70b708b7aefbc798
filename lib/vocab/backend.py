"""The `tokenizers` JSON of a fast tokenizer, the two tokenizer kinds we can rebuild, and the way back.

Every strategy edits the serialised backend (vocabulary, merges, added tokens) and keeps the
rest of the old pipeline (normaliser, pre-tokeniser, decoder, post-processor), so a new
tokenizer splits words, decodes and adds BOS exactly as the old one did. Two kinds are known:

- ``byte_level``: a ByteLevel pre-tokeniser (GPT-2, SmolLM2, LLaMa-3 converted from tiktoken);
  the 256 byte symbols are the alphabet, so no text is ever unknown;
- ``sentencepiece``: ``▁`` for spaces (a Metaspace pre-tokeniser or a normaliser that replaces
  spaces) and byte fallback (Mistral, Llama-2): characters outside the vocabulary become
  ``<0x..>`` byte tokens.

Anything else (WordPiece, a byte-less SentencePiece model) raises ``VocabError``: we never
fall back to another kind silently.
"""

from __future__ import annotations

import copy
import json
from typing import Any

BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))
METASPACE = "\u2581"  # ▁


class VocabError(ValueError):
    """Bad input to vocabulary adaptation; the message names it and what would work."""


def backend_json(tokenizer) -> dict[str, Any]:
    """The serialised `tokenizers` pipeline of a fast tokenizer (a fresh copy, safe to edit)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise VocabError(f"{type(tokenizer).__name__} is not a fast tokenizer: vocabulary adaptation edits the "
                         "`tokenizers` backend; load the tokenizer with use_fast=True")
    return json.loads(backend.to_str())


def from_json(spec: dict[str, Any]):
    """A `tokenizers.Tokenizer` from its JSON."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))


def contains_type(node: Any, type_name: str) -> bool:
    """Whether a pipeline component (or any member of a Sequence) has this ``type``."""
    if isinstance(node, dict):
        return node.get("type") == type_name or any(contains_type(v, type_name) for v in node.values())
    if isinstance(node, list):
        return any(contains_type(v, type_name) for v in node)
    return False


def replaces_space(normalizer: Any) -> bool:
    if isinstance(normalizer, dict):
        if normalizer.get("type") == "Replace" and normalizer.get("content") == METASPACE:
            return True
        return any(replaces_space(v) for v in normalizer.values())
    if isinstance(normalizer, list):
        return any(replaces_space(v) for v in normalizer)
    return False


def tokenizer_kind(spec: dict[str, Any]) -> str:
    """``byte_level`` or ``sentencepiece`` (see the module docstring); VocabError otherwise."""
    model = spec.get("model") or {}
    if contains_type(spec.get("pre_tokenizer"), "ByteLevel"):
        return "byte_level"
    uses_metaspace = contains_type(spec.get("pre_tokenizer"), "Metaspace") or replaces_space(spec.get("normalizer"))
    if uses_metaspace and model.get("byte_fallback"):
        return "sentencepiece"
    why = "SentencePiece-style without byte fallback" if uses_metaspace else "neither byte-level nor ▁-based"
    raise VocabError(
        f"cannot adapt a {model.get('type', '?')} tokenizer that is {why}: vocabulary adaptation needs a "
        "byte-level tokenizer (GPT-2/SmolLM2/LLaMa-3 style) or a SentencePiece-style one with byte fallback "
        "(Mistral/Llama-2 style), so that no text becomes unknown"
    )


def merge_pairs(model: dict[str, Any]) -> list[tuple[str, str]]:
    """BPE merges as pairs (`tokenizers` writes ``[a, b]``; older files ``"a b"``)."""
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model.get("merges", [])]


def added_contents(spec: dict[str, Any]) -> list[str]:
    """Contents of the added (special and user) tokens, in id order."""
    return [t["content"] for t in sorted(spec.get("added_tokens", []), key=lambda t: t["id"])]


def next_free_id(spec: dict[str, Any]) -> int:
    """First id above every model and added token: where appended tokens start."""
    model = spec["model"]
    ids = list(model["vocab"].values()) if isinstance(model["vocab"], dict) else [len(model["vocab"]) - 1]
    ids += [t["id"] for t in spec.get("added_tokens", [])]
    return max(ids) + 1


def remap_added_tokens(spec: dict[str, Any], token_to_id: dict[str, int]) -> None:
    """Point added tokens and the post-processor's special tokens at their ids in ``token_to_id``."""
    for token in spec.get("added_tokens", []):
        token["id"] = token_to_id[token["content"]]
    _remap_processor(spec.get("post_processor"), token_to_id)


def _remap_processor(node: Any, token_to_id: dict[str, int]) -> None:
    if isinstance(node, list):
        for item in node:
            _remap_processor(item, token_to_id)
        return
    if not isinstance(node, dict):
        return
    if "tokens" in node and "ids" in node:  # TemplateProcessing special token entry
        node["ids"] = [token_to_id[t] for t in node["tokens"]]
    for key in ("sep", "cls"):  # Bert/Roberta processing: [token, id]
        if isinstance(node.get(key), list) and len(node[key]) == 2 and node[key][0] in token_to_id:
            node[key][1] = token_to_id[node[key][0]]
    for value in node.values():
        if isinstance(value, (dict, list)):
            _remap_processor(value, token_to_id)


def to_fast(spec: dict[str, Any], like):
    """A `transformers` fast tokenizer from ``spec`` with ``like``'s special tokens and chat template.

    The generic class (not e.g. LlamaTokenizer) so that loading it back rebuilds nothing: the
    saved tokenizer.json is the whole truth.
    """
    from transformers import PreTrainedTokenizerFast

    kwargs: dict[str, Any] = {}
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        value = getattr(like, name, None)
        if value is not None:
            kwargs[name] = str(value)
    extra = [str(t) for t in getattr(like, "extra_special_tokens", None) or []]
    if extra:
        kwargs["extra_special_tokens"] = extra
    if getattr(like, "chat_template", None):
        kwargs["chat_template"] = like.chat_template
    for name in ("model_max_length", "padding_side", "truncation_side", "clean_up_tokenization_spaces"):
        if hasattr(like, name):
            kwargs[name] = getattr(like, name)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=from_json(spec), **kwargs)
    moved = [(t["content"], t["id"]) for t in spec.get("added_tokens", [])
             if tokenizer.convert_tokens_to_ids(t["content"]) != t["id"]]
    if moved:
        raise VocabError(f"added tokens did not keep their ids (first: {moved[0]}): the model vocabulary has a hole")
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        if name in kwargs and getattr(tokenizer, name + "_id") is None:
            raise VocabError(f"the new tokenizer lost the {name} {kwargs[name]!r} of the old one")
    return tokenizer


def copy_spec(spec: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(spec)
