"""Tiny tokenizers, texts and models for the lib.vocab tests, built in-test in well under a second.

Two old tokenizers of the two kinds lib.vocab knows, both trained on English only so that
Cyrillic, Polish and Turkish are new to them:
- byte-level BPE (SmolLM2/GPT-2 style, ChatML specials and chat template);
- SentencePiece BPE with byte fallback (Mistral/Llama-2 style), converted by the same code as
  the Mistral paper tokenizer.
"""

from __future__ import annotations

import functools
import random
import tempfile
from pathlib import Path

import pytest

EN = ("the quick brown fox jumps over lazy dog near river bank open file menu choose format press enter save "
      "your document numbers appear in tables functions return values when where which user data value table "
      "window option select insert delete column row cell sheet text page print view tools help")
RU = ("привет мир съешь же ещё этих мягких французских булок да выпей чаю откройте меню файла выберите формат "
      "нажмите ввод чтобы сохранить документ программа выводит таблицу значений сохраняет результат в файле "
      "строка столбец ячейка лист текст страница печать вид сервис справка окно параметр вставить удалить")
PL = ("zażółć gęślą jaźń pchnąć w tę łódź jeża lub ośm skrzyń fig łódź płynie po rzece otwórz menu plik wybierz "
      "format naciśnij klawisz aby zapisać dokument tabela wartość kolumna wiersz komórka arkusz strona")
TR = ("pijamalı hasta yağız şoföre çabucak güvendi ağaç çok güzel istanbul ılık bir gün dosya menüsünü açın "
      "biçimi seçin belgeyi kaydetmek için tuşuna basın tablo değer sütun satır hücre sayfa yazdır görünüm")

ROUND_TRIP = [
    "Hello world, this is plain English text.",
    "Привет, мир! Как дела?  Двойной пробел и\nперенос строки.",
    "Zażółć gęślą jaźń — Łódź, ŚWIĘTO.",
    "Ağaç, şoför, İstanbul, ılık, Çağ, öğün, ÜĞİŞÇÖ.",
    "Digits 0123456789 and 3.14159, 1 000 000.",
    "Emoji 😀🎉👍🏽 and symbols ©®™ ∑∫√ ½ ≠ «ёлки».",
    "\tTabs\tand   spaces\n\n\nand blank lines\n",
    "Mixed: код code kod kodu 42 — ок.",
    "  leading spaces and trailing   ",
]

CHAT = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SP_CHAT = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
           "message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}")


def corpus(words: str, n: int = 60, seed: int = 0) -> list[str]:
    """``n`` documents of random sentences over ``words`` (about 12 KB per 60 documents)."""
    rng = random.Random(seed)
    vocab = words.split()
    docs = []
    for i in range(n):
        sentences = []
        for _ in range(rng.randint(2, 4)):
            sentence = " ".join(rng.choice(vocab) for _ in range(rng.randint(4, 12)))
            sentences.append(sentence[0].upper() + sentence[1:] + rng.choice([".", ".", "!", "?", ","]))
        docs.append(" ".join(sentences) + f" {i * 7 % 100}")
    return docs


def target_texts() -> list[str]:
    return corpus(RU) + corpus(PL, 30, seed=1) + corpus(TR, 30, seed=2)


def english_texts() -> list[str]:
    return corpus(EN, seed=3)


def byte_level_tokenizer(vocab_size: int = 360):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(english_texts(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>", chat_template=CHAT)


def sentencepiece_tokenizer(tmp_dir, vocab_size: int = 400):
    import sentencepiece as spm

    from lib.vocab.paper_tokenizers import sentencepiece_fast

    prefix = str(tmp_dir / "sp")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(english_texts()), model_prefix=prefix, model_type="bpe", vocab_size=vocab_size,
        byte_fallback=True, character_coverage=1.0, remove_extra_whitespaces=False, minloglevel=2,
        split_digits=True, normalization_rule_name="identity", bos_id=1, eos_id=2, unk_id=0)
    tokenizer = sentencepiece_fast(prefix + ".model")
    tokenizer.chat_template = SP_CHAT
    return tokenizer


def tiny_model(tokenizer, tied: bool = True, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=tied, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def tiktoken_tokenizer(tmp_dir):
    """A LLaMa-3-style tokenizer (special tokens after the ranks) from a tiny tiktoken rank file."""
    import base64

    from transformers.convert_slow_tokenizer import bytes_to_unicode

    from lib.vocab.paper_tokenizers import tiktoken_fast

    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    source = byte_level_tokenizer()
    specials = set(source.all_special_tokens)
    tokens = [t for t, _ in sorted(source.get_vocab().items(), key=lambda kv: kv[1]) if t not in specials]
    ranks = [bytes(byte_of[c] for c in t) for t in tokens]
    path = tmp_dir / "tiny.tiktoken"
    path.write_bytes(b"".join(base64.b64encode(r) + b" %d\n" % i for i, r in enumerate(ranks)))
    n = len(ranks)
    return tiktoken_fast(path, special_tokens={"<|begin_of_text|>": n, "<|end_of_text|>": n + 1, "<|eot_id|>": n + 2})


@functools.cache
def old_tokenizer(kind: str):
    """The shared old tokenizer of a kind (built once per session; never modify it)."""
    if kind == "byte_level":
        return byte_level_tokenizer()
    if kind == "tiktoken":
        return tiktoken_tokenizer(Path(tempfile.mkdtemp(prefix="vocab-tiktoken-")))
    return sentencepiece_tokenizer(Path(tempfile.mkdtemp(prefix="vocab-sp-")))


KINDS = ("byte_level", "sentencepiece")  # the two kinds lib.vocab rebuilds; "tiktoken" is byte-level too


@pytest.mark.parametrize("kind", [*KINDS, "tiktoken"])
def test_fixture_tokenizers_round_trip_and_know_no_cyrillic(kind):
    tok = old_tokenizer(kind)
    for text in ROUND_TRIP:
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert len(tok("Привет", add_special_tokens=False)["input_ids"]) >= 6  # two byte tokens a letter
