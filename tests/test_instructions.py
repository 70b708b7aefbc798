"""Instruction data on small corpora built for these tests: format, builders, splits, no leak,
dedupe, save/load, hub and local Alpaca-style sets, and errors."""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter

import pytest

from lib.instructions import (
    BUILDERS,
    InstructionDataError,
    InstructionsNotBuiltError,
    build_instructions,
    builder_names,
    deduplicate,
    instructions_path,
    load_instruction_set,
    load_instructions,
    load_instructions_manifest,
    make_example,
    name_line,
    sense_gloss,
)

TAG = "instructions-test"
CORPUS = dict(tag=TAG, max_docs_per_source=40, test_fraction=0.3, validation_fraction=0.05, min_chars=100)
SOURCES = {"pl": ["libreoffice", "manpages"], "tr": ["libreoffice", "manpages", "wordnet"],
           "ru": ["libreoffice", "manpages", "rl_wsd"]}
DEFINITIONS_CAP = 1500  # the Turkish WordNet gives ~30k examples: cap them to keep the leak check quick
MIN_CHARS = 15  # what the leak filter searches for (lib.instructions.leaks.MIN_CHARS)

ALPACA_TR = [
    {"instruction": "Türkiye'nin başkenti neresidir?", "input": "", "output": "Türkiye'nin başkenti Ankara'dır."},
    {"instruction": "Aşağıdaki cümleyi İngilizceye çevir.", "input": "Bugün hava çok güzel.",
     "output": "The weather is very nice today."},
    {"instruction": "Sağlıklı kalmak için üç öneri ver.", "input": "",
     "output": "1. Dengeli beslenin.\n2. Düzenli egzersiz yapın.\n3. Yeterince uyuyun."},
    {"instruction": "Verilen sayıların toplamını hesapla.", "input": "4, 7, 12", "output": "Sayıların toplamı 23'tür."},
    {"instruction": "Bir kedi hakkında kısa bir şiir yaz.", "input": "",
     "output": "Yumuşak patili, sessiz adımlı,\nGüneşte uyur, rüyası tatlı."},
]


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def _write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def corpora(isolated_home):
    from lib.corpus import build_corpus

    for language, sources in SOURCES.items():
        build_corpus(language, sources=sources, **CORPUS)
    return isolated_home


@pytest.fixture(scope="module")
def examples(corpora):
    """Every builder's raw output: {language: {builder: [examples]}}."""
    return {lang: {name: BUILDERS[name].build(lang, TAG, 1234) for name in builder_names(lang)}
            for lang in SOURCES}


@pytest.fixture(scope="module")
def built(corpora):
    out = {lang: build_instructions(lang, tag="packaged", corpus_tag=TAG) for lang in ("pl", "ru")}
    out["tr"] = build_instructions("tr", tag="packaged", corpus_tag=TAG, max_per_source=DEFINITIONS_CAP)
    return out


def _rows(dataset_dict):
    return [(split, row) for split in ("train", "validation", "test") for row in dataset_dict[split]]


# ---------------------------------------------------------------- format and builders


def test_example_format(built):
    for language, data in built.items():
        ids = Counter()
        for _, row in _rows(data):
            assert set(row) == {"id", "source", "group", "prompt", "completion"}
            assert [m["role"] for m in row["prompt"]] == ["user"]
            assert [m["role"] for m in row["completion"]] == ["assistant"]
            assert row["prompt"][0]["content"].strip() and row["completion"][0]["content"].strip()
            assert row["source"] in BUILDERS and row["group"]
            ids[row["id"]] += 1
        assert ids and max(ids.values()) == 1, f"{language}: duplicate ids"


def test_registry():
    assert builder_names("pl") == ["translation", "manpages"]
    assert builder_names("tr") == ["translation", "definitions", "manpages"]
    assert builder_names("ru") == ["translation", "manpages", "word_senses"]


def test_builders_give_examples_in_the_language(examples):
    from lib.corpus.cleaning import language_labels

    def share_in_language(texts, language):
        labels = language_labels(texts, language)
        return sum(labels[t] for t in texts) / len(texts)

    for language, by_builder in examples.items():
        for name, found in by_builder.items():
            assert len(found) >= 10, f"{name}:{language} gave {len(found)} examples"
            answers = [e["completion"][0]["content"] for e in found if ":to_en:" not in e["id"]][:200]
            assert share_in_language(answers, language) > 0.8, f"{name}:{language} answers not in {language}"
            if name == "translation":
                english = [e["completion"][0]["content"] for e in found if ":to_en:" in e["id"]][:200]
                assert share_in_language(english, language) < 0.2
            # every prompt is one of the target-language phrasings, and more than one is used
            used = Counter(_phrasing(e["prompt"][0]["content"], language) for e in found)
            assert None not in used, f"{name}:{language}: a prompt matches no phrasing"
            assert len(used) >= 2, f"{name}:{language} uses one phrasing"


def _phrasing(prompt: str, language: str) -> str | None:
    """The template (of any kind) that ``prompt`` was made from."""
    from lib.instructions import templates

    for kind in (templates.TRANSLATE_FROM_EN, templates.TRANSLATE_TO_EN, templates.DEFINE_WORD,
                 templates.COMMAND, templates.MAN_PAGE, templates.WORD_SENSE):
        for template in kind.get(language, ()):
            pattern = re.escape(template)
            for slot in ("text", "word", "name", "section", "context"):
                pattern = pattern.replace(re.escape("{" + slot + "}"), ".+")
            if re.fullmatch(pattern, prompt, flags=re.DOTALL):
                return template
    return None


def test_translation_both_directions(examples):
    for by_builder in examples.values():
        found = by_builder["translation"]
        by_id = {e["id"]: e for e in found}
        from_en = [e for e in found if e["id"].startswith("translation:from_en:")]
        assert from_en and len(from_en) * 2 == len(found)
        for example in from_en[:50]:
            reverse = by_id[example["id"].replace(":from_en:", ":to_en:")]
            assert reverse["group"] == example["group"]
            assert example["completion"][0]["content"] in reverse["prompt"][0]["content"]
            assert reverse["completion"][0]["content"] in example["prompt"][0]["content"]
            assert 20 <= len(example["completion"][0]["content"]) <= 400
            assert _norm(example["completion"][0]["content"]) != _norm(reverse["completion"][0]["content"])


def test_builders_are_deterministic_and_seeded(corpora, examples):
    again = BUILDERS["manpages"].build("pl", TAG, 1234)
    assert again == examples["pl"]["manpages"]
    other = BUILDERS["manpages"].build("pl", TAG, 99)
    assert [e["completion"] for e in other] == [e["completion"] for e in again]
    assert [e["prompt"] for e in other] != [e["prompt"] for e in again]  # the phrasing follows the seed


def test_manpage_name_lines():
    assert name_line("NAZWA\nseq - wypisuje kolejne liczby\nSKŁADNIA\nseq [OPCJA]", "pl") == (
        ["seq"], "wypisuje kolejne liczby")
    assert name_line("Nazwa\nnull, zero - czarna dziura\nOPIS", "pl") == (["null", "zero"], "czarna dziura")
    assert name_line("İSİM\nnl - dosya satırlarını numaralar\nKULLANIM", "tr") == (
        ["nl"], "dosya satırlarını numaralar")
    assert name_line("ИМЯ\nacct — файл учёта процессов\nСИНТАКСИС", "ru") == (["acct"], "файл учёта процессов")
    assert name_line("ИМЯ\nОПИСАНИЕ\nПространства имён IPC ...", "ru") is None
    assert name_line("Some text without a name section", "pl") is None


def test_manpage_examples(examples):
    for language in SOURCES:
        for example in examples[language]["manpages"]:
            answer = example["completion"][0]["content"]
            assert not answer[0].islower() and answer.endswith((".", "!", "?", "…")), answer
            assert example["group"] in example["id"]


def test_definitions_and_word_senses(examples):
    from lib.corpus import rl_wsd_items
    from lib.tasks.offline import turkish_synsets

    synsets = {s.id: s for s in turkish_synsets()}
    def same_sentence(answer: str, text: str) -> bool:  # as_sentence: a capital and a full stop
        return _norm(answer).rstrip(".")[1:] == _norm(text).rstrip(".")[1:]

    for example in examples["tr"]["definitions"][:300]:
        synset = synsets[example["group"]]
        assert any(lit in example["prompt"][0]["content"] for lit in synset.literals)
        assert same_sentence(example["completion"][0]["content"], synset.definitions[0])
    items = {w.group: w for w in rl_wsd_items()}
    for example in examples["ru"]["word_senses"][:300]:
        item = items[example["group"]]
        assert f"«{item.word}»" in example["prompt"][0]["content"]
        assert same_sentence(example["completion"][0]["content"], sense_gloss(item.definition))
    assert sense_gloss("брак 1.1: ‘Продукция, не соответствующая требованиям’.") == (
        "Продукция, не соответствующая требованиям")
    assert sense_gloss("Небольшой магазин") == "Небольшой магазин"


# ---------------------------------------------------------------- splits and leaks


def test_splits_are_disjoint_by_group(built):
    for data in built.values():
        groups = {split: {row["group"] or row["id"] for row in data[split]} for split in data}
        assert groups["train"] and groups["test"]
        assert not groups["train"] & groups["validation"]
        assert not groups["train"] & groups["test"]
        assert not groups["validation"] & groups["test"]


def test_every_packaged_example_comes_from_the_corpus_train_split(built):
    from lib.corpus import load_corpus
    from lib.tasks.offline import split_function

    for language, data in built.items():
        split_of = split_function(language, TAG)
        corpus = load_corpus(language, TAG)
        held_out_groups = set(corpus["validation"]["group"]) | set(corpus["test"]["group"])
        train_groups = set(corpus["train"]["group"])
        rows = [row for _, row in _rows(data)]
        assert all(split_of(row["group"]) == "train" for row in rows)
        assert not {row["group"] for row in rows} & held_out_groups
        # man pages are read from the corpus train documents; other groups may have no document
        # (help files whose text cleaning dropped while their pairs stayed, short synsets or contexts)
        manpages = [row for row in rows if row["source"] == "manpages"]
        assert manpages and all(row["group"] in train_groups for row in manpages)


def _held_out_texts(language: str) -> set[str]:
    """Independently of lib.instructions: the text of every held-out item of every offline task."""
    from lib.tasks.offline import build_offline_task, offline_task_ids

    texts: set[str] = set()
    for task_id in offline_task_ids(language):
        try:
            task = build_offline_task(task_id.split(":")[0], language, corpus_tag=TAG)
        except ValueError:
            continue
        labels = set()
        if task.kind != "classification":
            labels = {_norm(task.answer_text(i)) for i in task.splits["train"]}
        for split in ("validation", "test"):
            for item in task.splits[split]:
                texts.update(_norm(v) for v in item.fields.values())
                answer = _norm(task.answer_text(item))
                if task.kind != "classification" and answer not in labels:
                    texts.add(answer)
    return {t for t in texts if len(t) >= MIN_CHARS}


def test_no_example_contains_a_benchmark_item(built):
    for language, data in built.items():
        needles = _held_out_texts(language)
        assert len(needles) > 50, f"{language}: the leak check would be vacuous"
        # "\0" separates examples so that no needle can match across two of them
        haystack = "\0".join(_norm(m["content"]) for _, row in _rows(data)
                             for m in row["prompt"] + row["completion"])
        leaked = [n for n in needles if n in haystack]
        assert not leaked, f"{language}: {len(leaked)} held-out texts in the instruction data, e.g. {leaked[:2]}"


def test_leak_filter_drops_planted_items(corpora, tmp_path):
    from lib.tasks.offline import build_offline_task

    task = build_offline_task("translation_choice_from_en", "pl", corpus_tag=TAG)
    planted = [{"instruction": "Przetłumacz na polski:", "input": item.fields["en"], "output": "..."}
               for item in task.splits["test"][:3]]
    planted.append({"instruction": "Co to jest?", "input": "",
                    "output": "Odpowiedź: " + task.answer_text(task.splits["test"][0]) + " Koniec."})
    clean = {"instruction": "Podaj stolicę Polski.", "input": "", "output": "Stolicą Polski jest Warszawa."}
    spec = "local:" + _write_jsonl(tmp_path / "planted.jsonl", [*planted, clean])
    data = build_instructions("pl", tag="planted", corpus_tag=TAG, sources=[spec], validation_fraction=0.0,
                              test_fraction=0.0)
    manifest = load_instructions_manifest("pl", "planted")
    assert manifest["sources"][spec]["leaks"] == len(planted)
    assert [row["completion"][0]["content"] for row in data["train"]] == [clean["output"]]
    assert data["train"][0]["group"] == ""  # hub and local examples have no corpus group


# ---------------------------------------------------------------- dedupe, cap, save/load


def test_deduplicate():
    a = make_example("a", "s", "g1", "Co robi  ls?", "Wypisuje pliki.")
    same_pair = make_example("b", "s", "g2", "Co robi ls?\n", " Wypisuje\tpliki.")
    same_prompt = make_example("c", "s", "g3", "Co robi ls?", "Coś innego.")
    nfd = make_example("d", "s", "g4", unicodedata.normalize("NFD", "Co znaczy żółw?"), "Zwierzę.")
    nfc = make_example("e", "s", "g5", "Co znaczy żółw?", "Gad.")
    other = make_example("f", "s", "g6", "Co robi cp?", "Wypisuje pliki.")  # same answer, other question
    kept, dropped = deduplicate([a, same_pair, same_prompt, nfd, nfc, other])
    assert [e["id"] for e in kept] == ["a", "d", "f"] and dropped == 3


def test_save_load_round_trip_and_manifest(built):
    for language, data in built.items():
        loaded = load_instructions(language, "packaged")
        for split in ("train", "validation", "test"):
            assert loaded[split].to_list() == data[split].to_list()
        manifest = load_instructions_manifest(language, "packaged")
        assert manifest["splits"] == {split: len(data[split]) for split in data}
        assert manifest["parameters"]["corpus_tag"] == TAG
        assert set(manifest["sources"]) == set(builder_names(language))
        for source, count in manifest["sources"].items():
            left = count["examples"] - count["not_train"] - count["leaks"] - count["duplicates"] - count["capped"]
            assert left == count["kept"] == sum(count["splits"].values())
            assert count["splits"] == {s: sum(1 for r in data[s] if r["source"] == source) for s in data}
        assert manifest["dropped"]["not_train"] == 0
        assert manifest["leak_filter"]["tasks"] and manifest["leak_filter"]["texts"] > 0
        parent = instructions_path(language, "packaged").parent
        leftovers = [p.name for p in parent.iterdir() if p.name.startswith(".tmp-")]
        assert not leftovers, f"temporary directories left behind: {leftovers}"
    tr = load_instructions_manifest("tr", "packaged")["sources"]["definitions"]
    assert tr["kept"] == DEFINITIONS_CAP and tr["capped"] > 0 and tr["leaks"] > 0


def test_rebuild_is_reused_or_forced(built):
    path = instructions_path("pl", "packaged") / "manifest.json"
    before, ids = path.stat().st_mtime_ns, built["pl"]["train"]["id"]
    again = build_instructions("pl", tag="packaged", corpus_tag=TAG)
    assert path.stat().st_mtime_ns == before  # same parameters, same corpus: reused
    assert again["train"]["id"] == ids
    forced = build_instructions("pl", tag="packaged", corpus_tag=TAG, force=True)
    assert path.stat().st_mtime_ns != before
    assert forced["train"]["id"] == ids  # deterministic
    other = build_instructions("pl", tag="packaged", corpus_tag=TAG, seed=7)  # new parameters: rebuilt
    assert load_instructions_manifest("pl", "packaged")["parameters"]["seed"] == 7
    assert sorted(other["train"]["id"]) != sorted(ids)  # another split


# ---------------------------------------------------------------- hub and local sets


def test_local_alpaca_jsonl(tmp_path):
    spec = "local:" + _write_jsonl(tmp_path / "alpaca_tr.jsonl", ALPACA_TR)
    found = load_instruction_set(spec)
    assert len(found) == 5
    assert {e["source"] for e in found} == {spec} and {e["group"] for e in found} == {""}
    assert found[0]["prompt"] == [{"role": "user", "content": "Türkiye'nin başkenti neresidir?"}]
    assert found[1]["prompt"][0]["content"] == "Aşağıdaki cümleyi İngilizceye çevir.\n\nBugün hava çok güzel."
    assert found[1]["completion"] == [{"role": "assistant", "content": "The weather is very nice today."}]


def test_local_formats(tmp_path):
    import datasets

    (tmp_path / "alpaca.json").write_text(json.dumps(ALPACA_TR, ensure_ascii=False), encoding="utf-8")
    assert len(load_instruction_set(f"local:{tmp_path / 'alpaca.json'}")) == 5
    datasets.Dataset.from_list(ALPACA_TR).to_parquet(str(tmp_path / "alpaca.parquet"))
    assert len(load_instruction_set(f"local:{tmp_path / 'alpaca.parquet'}")) == 5
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ALPACA_TR)}).save_to_disk(str(tmp_path / "saved"))
    assert len(load_instruction_set(f"local:{tmp_path / 'saved'}")) == 5


def test_chat_schemas(tmp_path):
    rows = [
        {"messages": [{"role": "system", "content": "Kısa cevap ver."},
                      {"role": "user", "content": "İki artı iki kaç eder?"},
                      {"role": "assistant", "content": "Dört."}]},
        {"messages": [{"role": "user", "content": "Merhaba!"}]},  # no answer: skipped
    ]
    found = load_instruction_set("local:" + _write_jsonl(tmp_path / "chat.jsonl", rows))
    assert len(found) == 1
    assert [m["role"] for m in found[0]["prompt"]] == ["system", "user"]
    assert found[0]["completion"][0]["content"] == "Dört."
    sharegpt = [{"conversations": [{"from": "human", "value": "Selam, nasılsın?"},
                                   {"from": "gpt", "value": "İyiyim, teşekkürler."}]}]
    found = load_instruction_set("local:" + _write_jsonl(tmp_path / "sharegpt.jsonl", sharegpt))
    assert found[0]["prompt"] == [{"role": "user", "content": "Selam, nasılsın?"}]


def test_hf_loader_with_a_local_stand_in(corpora, tmp_path, monkeypatch):
    import datasets

    path = _write_jsonl(tmp_path / "alpaca_tr.jsonl", ALPACA_TR)
    calls = []

    def fake_load_dataset(name, config=None, split=None, **kwargs):  # the hub is unreachable here
        calls.append((name, config, split))
        rows = [json.loads(line) for line in open(path, encoding="utf-8")]
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    found = load_instruction_set("hf:someone/alpaca-tr:clean")
    assert calls == [("someone/alpaca-tr", "clean", "train")]
    assert len(found) == 5 and found[0]["source"] == "hf:someone/alpaca-tr:clean"
    # in a build next to packaged data; a Turkish set on the Turkish corpus
    data = build_instructions("tr", tag="with-hf", corpus_tag=TAG, sources=["manpages", "hf:someone/alpaca-tr"])
    manifest = load_instructions_manifest("tr", "with-hf")
    assert manifest["sources"]["hf:someone/alpaca-tr"]["kept"] == 5
    assert sum(1 for _, row in _rows(data) if row["source"] == "hf:someone/alpaca-tr") == 5


def test_hub_errors(tmp_path):
    with pytest.raises(InstructionDataError, match="does not exist"):
        load_instruction_set(f"local:{tmp_path / 'missing.jsonl'}")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InstructionDataError, match="unsupported file type"):
        load_instruction_set(f"local:{tmp_path / 'notes.txt'}")
    wrong = [{"instruction": "Soru?", "answer": "Cevap."}]
    with pytest.raises(InstructionDataError, match="missing column.*'output'") as info:
        load_instruction_set("local:" + _write_jsonl(tmp_path / "wrong.jsonl", wrong))
    assert "'instruction'" not in str(info.value).split("(")[0]  # only what is missing is named
    with pytest.raises(InstructionDataError, match="missing column.*'instruction', 'output'"):
        load_instruction_set("local:" + _write_jsonl(tmp_path / "qa.jsonl", [{"question": "a", "answer": "b"}]))
    with pytest.raises(InstructionDataError, match="empty"):
        load_instruction_set("local:" + _write_jsonl(tmp_path / "empty.jsonl", []))
    blank = [{"instruction": "Soru?", "input": "", "output": "  "}]
    with pytest.raises(InstructionDataError, match="no usable examples"):
        load_instruction_set("local:" + _write_jsonl(tmp_path / "blank.jsonl", blank))
    (tmp_path / "object.json").write_text('{\n  "data": []\n}\n')
    with pytest.raises(InstructionDataError, match="list of records"):
        load_instruction_set(f"local:{tmp_path / 'object.json'}")
    (tmp_path / "broken.jsonl").write_text('{"instruction": "a", "output": "b"}\n{not json\n')
    with pytest.raises(InstructionDataError, match="broken.jsonl:2"):
        load_instruction_set(f"local:{tmp_path / 'broken.jsonl'}")


# ---------------------------------------------------------------- bad input


def test_bad_input(corpora, tmp_path):
    with pytest.raises(InstructionDataError, match="unknown language 'de'"):
        build_instructions("de", corpus_tag=TAG)
    # source errors come before the corpus is looked at ("nope" is not built)
    with pytest.raises(InstructionDataError, match="unknown source 'wikipedia'.*'translation'.*'local:PATH'"):
        build_instructions("pl", corpus_tag="nope", sources=["wikipedia"])
    with pytest.raises(InstructionDataError, match="'definitions' exists for tr, not 'pl'"):
        build_instructions("pl", corpus_tag="nope", sources=["definitions"])
    with pytest.raises(InstructionDataError, match="'word_senses' exists for ru, not 'tr'"):
        build_instructions("tr", corpus_tag="nope", sources=["packaged", "word_senses"])
    with pytest.raises(InstructionDataError, match="does not exist"):
        build_instructions("pl", corpus_tag="nope", sources=[f"local:{tmp_path / 'missing.json'}"])
    with pytest.raises(InstructionDataError, match="python -m lib prepare --language pl -p corpus_tag=nope"):
        build_instructions("pl", corpus_tag="nope")
    with pytest.raises(InstructionDataError, match="max_per_source"):
        build_instructions("pl", corpus_tag=TAG, max_per_source=-1)
    with pytest.raises(InstructionDataError, match="below 1"):
        build_instructions("pl", corpus_tag=TAG, validation_fraction=0.5, test_fraction=0.5)
    with pytest.raises(InstructionDataError, match="bad tag"):
        build_instructions("pl", tag="../x", corpus_tag=TAG)
    with pytest.raises(InstructionDataError, match="no sources"):
        build_instructions("pl", corpus_tag=TAG, sources=[])
    with pytest.raises(InstructionsNotBuiltError, match=r"build_instructions\('pl', tag='never'\)"):
        load_instructions("pl", "never")
    assert not os.path.exists(instructions_path("pl", "never"))


def test_empty_result_is_an_error(corpora, tmp_path):
    from lib.tasks.offline import build_offline_task

    task = build_offline_task("translation_choice_to_en", "pl", corpus_tag=TAG)
    only_leaks = [{"instruction": "Przetłumacz:", "input": item.fields["target"], "output": item.fields["en"]}
                  for item in task.splits["test"][:2]]
    spec = "local:" + _write_jsonl(tmp_path / "only_leaks.jsonl", only_leaks)
    with pytest.raises(InstructionDataError, match="no 'pl' instruction examples left"):
        build_instructions("pl", tag="empty", corpus_tag=TAG, sources=[spec])
    with pytest.raises(InstructionsNotBuiltError):
        load_instructions("pl", "empty")  # nothing half-written that looks complete


def test_interrupted_build_leaves_nothing_that_looks_complete(corpora, tmp_path, monkeypatch):
    import datasets

    spec = "local:" + _write_jsonl(tmp_path / "alpaca_pl.jsonl", [
        {"instruction": "Podaj stolicę Polski.", "input": "", "output": "Stolicą Polski jest Warszawa."}])
    parent = instructions_path("pl", "crash").parent
    parent.mkdir(parents=True, exist_ok=True)
    stale = parent / ".tmp-crash-999999999-0123abcd"  # a killed build of this tag (no such process)
    other = parent / ".tmp-crash-b-1-0123abcd"  # a build of the tag "crash-b" under way (pid 1 lives)
    stale.mkdir()
    other.mkdir()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.DatasetDict, "save_to_disk", crash)
    with pytest.raises(KeyboardInterrupt):
        build_instructions("pl", tag="crash", corpus_tag=TAG, sources=[spec], test_fraction=0.0,
                           validation_fraction=0.0)  # the one example must train (its id hashes the tmp path)
    assert not instructions_path("pl", "crash").exists()
    assert sorted(p.name for p in parent.iterdir() if p.name.startswith(".tmp-crash")) == [other.name]
    with pytest.raises(InstructionsNotBuiltError):
        load_instructions("pl", "crash")
