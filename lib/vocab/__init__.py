"""Vocabulary adaptation building blocks: new tokenizers, new-token embeddings, measures.

    from lib.vocab import build_tokenizer, adapt_model, save_checkpoint, tokenizer_measures
    new_tok = build_tokenizer(old_tok, train_texts, "extension", vocab_size=16000)
    adapt_model(model, old_tok, new_tok, init="mean")
    save_checkpoint(model, new_tok, run_dir / "model", {"strategy": "extension"})

Below every stage: imports no stage module. See each module for the why.
"""

from lib.vocab.backend import VocabError, tokenizer_kind
from lib.vocab.checkpoint import load_provenance, save_checkpoint, save_tokenizer, vocabulary_provenance
from lib.vocab.init import INITS, SubtokenMap, adapt_model, subtoken_map, subtoken_mean
from lib.vocab.measures import new_token_ids, tokenizer_measures
from lib.vocab.paper_tokenizers import (
    PAPER_TOKENIZERS,
    known_paper_tokenizers,
    paper_tokenizer,
    require_model,
    source_tokenizer,
)
from lib.vocab.strategies import STRATEGIES, build_tokenizer, strategy, strategy_params

__all__ = [
    "INITS", "PAPER_TOKENIZERS", "STRATEGIES", "SubtokenMap", "VocabError", "adapt_model", "build_tokenizer",
    "known_paper_tokenizers", "load_provenance", "new_token_ids", "paper_tokenizer", "save_checkpoint",
    "require_model", "save_tokenizer", "source_tokenizer", "strategy", "strategy_params", "subtoken_map",
    "subtoken_mean", "tokenizer_kind", "tokenizer_measures", "vocabulary_provenance",
]
