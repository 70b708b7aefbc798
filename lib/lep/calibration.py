"""Self-calibration, the LEP paper's optional last step: the propagated model is tuned on its
instruct model's own answers.

The propagated model keeps T's layers but reads and writes tokens through new embeddings, so
it drifts from what T would have said. Calibration asks T itself (the instruct model with its
original tokenizer and chat template) to answer prompts greedily, then tunes the propagated
model with LoRA on those prompt/answer pairs, loss on the answer only, so that it answers as
T does. The paper took its prompts from an instruction set (Saiga) and used greedy decoding;
here the prompts come from the packaged instruction data (``lib.instructions``):

- target-language prompts: the prompts of the instruction set's *train* split (which holds
  corpus-train groups only; the split is by group, so no validation or test group appears),
  drawn in turn from each source (translation, man pages, ...) so that one large source does
  not fill the set;
- English prompts: the English side of the train split's translation examples (their
  ``translation:to_en`` answers) under English instructions (``ENGLISH_PHRASINGS``): T keeps
  answering in English too;
- optionally, copy-task examples (``copy_examples``): paragraphs of the target corpus's *train*
  split under a "repeat this text verbatim" instruction, the paragraph itself as the answer
  (the copy benchmark draws its paragraphs from the test split, never from train).

The pairs are rows in TRL's conversational prompt-completion format (``sft_dataset``); the
tuning is the SFT path of ``05_instruction_tuning`` (``lib.training.sft.build_trainer``,
``run_training``, ``lib.training.modes.export_checkpoint``) with a LoRA adapter
(``lib.training.lora``), and the merged result is a standalone checkpoint.

    prompts = target_prompts(train_rows, 200, seed) + english_prompts(train_rows, 200, seed, "ru")
    pairs = answer_prompts(instruct, instruct_tokenizer, prompts, max_new_tokens=256)
    trainer = calibration_trainer(propagated_dir, tokenizer, pairs, settings=..., lora=..., ...)

Below every stage: imports no stage module.
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lib.lep.propagation import LepError
from lib.tasks.offline import COPY_CHARS, COPY_PER_DOCUMENT  # the copy benchmark's paragraph rules

LANGUAGE_CHOICES = ("target", "en")  # the adapted language (``target`` or its code) and English
INSTRUCTION_SOURCES = ("packaged",)
INSTRUCTION_SEED = 1234  # the instruction set's build and split; the run's seed draws the prompts
PAIRS_FILE = "pairs.jsonl"
PAIRS_RECORD = "pairs.json"  # written last: the settings the pairs were made with, and counts

ENGLISH_NAMES = {"pl": "Polish", "tr": "Turkish", "ru": "Russian"}
ENGLISH_PHRASINGS = (
    "Translate the following text into {language}.\n\n{text}",
    "Summarize the following text in one sentence.\n\n{text}",
    "Explain in simple words what the following text says.\n\n{text}",
    "What is the following text about? Answer briefly.\n\n{text}",
)
# Worded apart from the copy benchmark's own prompt: calibration teaches the skill, not the prompt.
COPY_PHRASINGS: dict[str, tuple[str, ...]] = {
    "pl": ("Przepisz ten tekst słowo w słowo, niczego nie zmieniając:\n\n{text}",
           "Powtórz dosłownie poniższy tekst.\n\n{text}"),
    "tr": ("Bu metni hiçbir şeyi değiştirmeden kelimesi kelimesine yaz:\n\n{text}",
           "Aşağıdaki metni aynen tekrar et.\n\n{text}"),
    "ru": ("Перепиши этот текст слово в слово, ничего не меняя:\n\n{text}",
           "Повтори дословно следующий текст.\n\n{text}"),
}


class CalibrationError(LepError):
    """Calibration cannot run with these inputs; the message says why and what would work."""


def check_chat_template(tokenizer, name: str) -> None:
    """T must have a chat template: its answers are answers to chat prompts, and the propagated
    model (which carries T's template) is tuned in the same markup."""
    if not getattr(tokenizer, "chat_template", None):
        raise CalibrationError(
            f"calibrate=True needs an instruct model with a chat template, and the tokenizer of {name} has none "
            "(a base model?): calibration asks T to answer chat prompts and tunes the result in T's chat "
            "markup; name an instruct model as `instruct`, or set calibrate=False")


def languages(choices: Sequence[str], language: str) -> list[str]:
    """The calibration languages as codes: ``target`` (or ``language`` itself) and ``en``."""
    out = []
    for choice in choices:
        code = language if choice == "target" else choice
        if code not in (language, "en"):
            raise CalibrationError(f"calibration languages are 'target' ({language}) and 'en', got {choice!r}")
        if code in out:
            raise CalibrationError(f"calibration language {code!r} is named twice")
        out.append(code)
    return out


# ---------------------------------------------------------------- prompts


def instruction_tag(corpus_tag: str) -> str:
    """The instruction set calibration builds (apart from 05's, whose build parameters differ)."""
    return f"calibration-{corpus_tag}"


def instruction_train_rows(language: str, corpus_tag: str, log=print) -> list[dict[str, Any]]:
    """The train split of the packaged instruction set of ``language`` (built once per corpus)."""
    from lib.instructions import build_instructions

    tag = instruction_tag(corpus_tag)
    log(f"instruction set {language}/{tag} (packaged sources, train split)")
    data = build_instructions(language, tag=tag, corpus_tag=corpus_tag, sources=list(INSTRUCTION_SOURCES),
                              seed=INSTRUCTION_SEED, max_per_source=0)
    return [dict(row) for row in data["train"]]


def _by_source_in_turn(rows: Sequence[dict[str, Any]], seed: int, n: int, key: str) -> list[dict[str, Any]]:
    """``n`` rows taken in turn from each source, each source shuffled by ``seed``."""
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["id"]):
        by_source[row["source"]].append(row)
    queues = []
    for source in sorted(by_source):
        items = by_source[source]
        random.Random(f"{seed}:{key}:{source}").shuffle(items)
        queues.append(items)
    out: list[dict[str, Any]] = []
    while len(out) < n and any(queues):
        for queue in queues:
            if queue and len(out) < n:
                out.append(queue.pop(0))
    return out


def target_prompts(train_rows: Sequence[dict[str, Any]], n: int, seed: int, language: str) -> list[dict[str, Any]]:
    """Up to ``n`` prompts of the instruction set's train rows, in turn from each source."""
    return [{"id": row["id"], "kind": "instruction", "language": language, "source": row["source"],
             "group": row["group"], "prompt": [dict(m) for m in row["prompt"]]}
            for row in _by_source_in_turn(train_rows, seed, n, "target")]


def english_texts(train_rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(id, group, English text) of the train rows' translations into English, each text once."""
    seen: set[str] = set()
    out = []
    for row in sorted(train_rows, key=lambda r: r["id"]):
        if row["source"] != "translation" or not row["id"].startswith("translation:to_en:"):
            continue
        text = row["completion"][-1]["content"].strip()
        if text and text not in seen:
            seen.add(text)
            out.append((row["id"], row["group"], text))
    return out


def english_prompts(train_rows: Sequence[dict[str, Any]], n: int, seed: int, language: str) -> list[dict[str, Any]]:
    """Up to ``n`` English prompts over the English texts of the train rows (``ENGLISH_PHRASINGS``)."""
    from lib.instructions.records import pick_phrasing

    texts = english_texts(train_rows)
    random.Random(f"{seed}:english").shuffle(texts)
    out = []
    for row_id, group, text in texts[:n]:
        phrasing = pick_phrasing(ENGLISH_PHRASINGS, seed, f"english:{text}")
        out.append({"id": f"en:{row_id}", "kind": "instruction", "language": "en", "source": "translation",
                    "group": group, "prompt": [{"role": "user", "content": phrasing.format(
                        language=ENGLISH_NAMES[language], text=text)}]})
    return out


def copy_examples(documents: Sequence[dict[str, Any]], n: int, seed: int, language: str) -> list[dict[str, Any]]:
    """Up to ``n`` copy examples from ``documents`` (the corpus's TRAIN split: id, group, text): a
    line of ``COPY_CHARS`` characters that occurs once in them, at most ``COPY_PER_DOCUMENT`` per
    document, under a "repeat verbatim" instruction; the answer is the line itself."""
    from lib.instructions.records import pick_phrasing

    if n <= 0:
        return []
    lo, hi = COPY_CHARS
    counts: dict[str, int] = defaultdict(int)
    per_document = []
    for doc in documents:
        lines = [(f"{doc['id']}#{i}", doc["group"], line.strip()) for i, line in enumerate(doc["text"].split("\n"))
                 if lo <= len(line.strip()) <= hi]
        for *_, line in lines:
            counts[line] += 1
        per_document.append((doc["id"], lines))
    pool = []
    for doc_id, lines in sorted(per_document):
        lines = [row for row in lines if counts[row[2]] == 1]  # a repeated line is boilerplate
        if len(lines) > COPY_PER_DOCUMENT:
            lines = random.Random(f"{seed}:copy:{doc_id}").sample(lines, COPY_PER_DOCUMENT)
        pool += lines
    random.Random(f"{seed}:copy").shuffle(pool)
    out = []
    for row_id, group, text in pool[:n]:
        phrasing = pick_phrasing(COPY_PHRASINGS[language], seed, f"copy:{text}")
        out.append({"id": f"copy:{row_id}", "kind": "copy", "language": language, "source": "corpus", "group": group,
                    "prompt": [{"role": "user", "content": phrasing.format(text=text)}],
                    "completion": [{"role": "assistant", "content": text}]})
    return out


def corpus_train_documents(language: str, corpus_tag: str) -> list[dict[str, Any]]:
    from lib.corpus import load_corpus

    train = load_corpus(language, corpus_tag)["train"]
    return [{"id": row["id"], "group": row["group"], "text": row["text"]} for row in train]


# ---------------------------------------------------------------- T's answers


def answer_prompts(model, tokenizer, prompts: Sequence[dict[str, Any]], *, max_new_tokens: int,
                   batch_size: int = 16) -> tuple[list[dict[str, Any]], int]:
    """T's greedy answers to ``prompts`` (rendered with ``tokenizer``'s chat template: pass T's
    own), as pairs with a ``completion``; empty answers are dropped (returned: how many).
    ``at_budget`` marks an answer that probably used up ``max_new_tokens`` (cut short; counted by
    tokenizing the decoded answer again, so approximate)."""
    from lib.generation import chat_generate

    check_chat_template(tokenizer, "the answering model")
    order = sorted(range(len(prompts)), key=lambda i: len("".join(m["content"] for m in prompts[i]["prompt"])))
    answers = chat_generate(model, tokenizer, [prompts[i]["prompt"] for i in order], max_new_tokens=max_new_tokens,
                            batch_size=batch_size)  # similar lengths share a batch: less padding
    by_index = dict(zip(order, answers))
    pairs, empty = [], 0
    for i, row in enumerate(prompts):
        text = by_index[i]
        if not text:
            empty += 1
            continue
        n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        pairs.append(row | {"completion": [{"role": "assistant", "content": text}], "answer_tokens": n_tokens,
                            "at_budget": n_tokens >= max_new_tokens})
    return pairs, empty


# ---------------------------------------------------------------- the record in the run directory


def save_pairs(directory: Path, pairs: Sequence[dict[str, Any]], settings: dict[str, Any],
               counts: dict[str, Any]) -> Path:
    """``pairs.jsonl`` (one pair a line) and ``pairs.json`` (settings and counts), the record last."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / PAIRS_RECORD).unlink(missing_ok=True)
    tmp = directory / f".{PAIRS_FILE}.{os.getpid()}"
    with tmp.open("w", encoding="utf-8") as f:
        for pair in pairs:
            f.write(json.dumps(pair, ensure_ascii=False) + "\n")
    tmp.replace(directory / PAIRS_FILE)
    record = {"settings": settings, "counts": counts}
    (directory / PAIRS_RECORD).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return directory / PAIRS_FILE


def load_pairs(directory: Path, settings: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The pairs saved in ``directory`` when they were made with ``settings``, else None."""
    directory = Path(directory)
    try:
        record = json.loads((directory / PAIRS_RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("settings") != json.loads(json.dumps(settings)):
        return None
    with (directory / PAIRS_FILE).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def pair_counts(pairs: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for pair in pairs:
        counts[f"{pair['kind']}:{pair['language']}"] += 1
        counts["at_budget"] += int(bool(pair.get("at_budget")))
    return dict(counts)


# ---------------------------------------------------------------- tuning


def sft_dataset(pairs: Sequence[dict[str, Any]]):
    """Prompt/completion rows (conversational) for TRL's SFTTrainer."""
    import datasets

    if not pairs:
        raise CalibrationError("no calibration pairs to train on (every answer was empty, or no prompts)")
    return datasets.Dataset.from_list([{"prompt": p["prompt"], "completion": p["completion"]} for p in pairs])


def calibration_trainer(model_dir: str | Path, tokenizer, pairs: Sequence[dict[str, Any]], *, settings, lora: dict,
                        max_length: int, work_dir: str | Path, device: str, precision: str):
    """The SFTTrainer of ``05_instruction_tuning`` (loss on the answer only) for a LoRA adapter on the
    model in ``model_dir`` (the propagated checkpoint) with ``tokenizer`` (its own, with T's chat
    template); checkpoints, adapter and logs under ``work_dir``. Not trained yet."""
    from lib.models import check_compatible
    from lib.training.modes import load_trainable
    from lib.training.sft import build_trainer, ensure_chat_template

    ensure_chat_template(tokenizer, "model")
    trainable = load_trainable(str(model_dir), "lora", lora=lora, device=device, precision=precision)
    check_compatible(trainable.model, tokenizer, str(model_dir))
    return build_trainer(trainable, tokenizer, sft_dataset(pairs), None, settings=settings, max_length=max_length,
                         run_dir=Path(work_dir), precision=precision, device=device)


def train_and_merge(trainer, *, model_dir: str | Path, tokenizer, work_dir: str | Path, out_dir: str | Path,
                    provenance: dict[str, Any], log=print):
    """Train (resuming from ``<work_dir>/checkpoints``), then merge the adapter into a float32 copy
    of ``model_dir``: the standalone checkpoint in ``out_dir``. Returns (SftOutcome, out_dir)."""
    from lib.training.modes import export_checkpoint
    from lib.training.sft import run_training

    outcome = run_training(trainer, Path(work_dir), save_adapter=True, log=log)
    out = export_checkpoint(outcome.trainer.model, base_spec=str(model_dir), mode="lora",
                            adapter_dir=Path(work_dir) / "adapter", out_dir=Path(out_dir), tokenizer=tokenizer,
                            provenance={"vocab_size": len(tokenizer), **provenance})
    return outcome, out
