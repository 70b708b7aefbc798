"""build_corpus / load_corpus end to end, on fixtures built here (plus one capped real build)."""

from __future__ import annotations

import hashlib
import json
import random
import sys
import types
from pathlib import Path

import pytest

import lib.corpus.build as build_mod
from lib.corpus import (
    CorpusError,
    CorpusNotBuiltError,
    assign_split,
    build_corpus,
    corpus_path,
    load_corpus,
    load_pairs,
    load_stats,
)
from lib.corpus.build import load_manifest

VOCAB = (
    "dokument plik okno menu przycisk polecenie zmiana tekst akapit strona tabela komórka "
    "wiersz kolumna arkusz wykres obraz rysunek styl szablon format czcionka rozmiar kolor "
    "zapisać otworzyć zamknąć wybrać kliknąć wstawić usunąć skopiować wkleić przenieść "
    "który która które jeżeli ponieważ następnie również zawsze często każdy wszystkie "
    "jest może można należy trzeba będzie został została będą są bardzo szybko łatwo "
    "użytkownik ustawienia narzędzia opcje widok edycja pomoc język słownik pisownia "
    "gdzie kiedy dlaczego jak aby oraz lub ale też także tylko jeszcze już teraz potem"
).split()
ENGLISH = ("This paragraph has not been translated yet and explains in plain English how the "
           "dialog box works when you open it from the menu.")


def polish(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = [rng.choice(VOCAB) for _ in range(rng.randrange(8, 16))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("LANGADAPT_HOME", str(path))
    return path


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    """80 Polish documents, 2 per group, plus one exact and one near duplicate
    (in other groups), an English document and a short one. Built with seed=1: 5% of its
    40 groups under the default seed leaves the test split empty, which is refused."""
    rng = random.Random(7)
    rows = [{"id": f"d{i:03d}", "group": f"g{i // 2:03d}", "text": polish(rng, 6)} for i in range(80)]
    rows.append({"id": "x-exact", "group": "gx1", "text": rows[5]["text"]})
    words = rows[9]["text"].split()
    words[-2] = "inny"
    rows.append({"id": "x-near", "group": "gx2", "text": " ".join(words)})
    rows.append({"id": "x-english", "group": "gx3", "text": ENGLISH})
    rows.append({"id": "x-short", "group": "gx4", "text": "Krótki tekst."})
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_build_and_load_a_local_corpus(home: Path, jsonl: Path) -> None:
    path = build_corpus("pl", sources=[f"local:{jsonl}"], seed=1, min_chars=100)
    assert path == corpus_path("pl") == home / "corpora/pl/default"
    corpus = load_corpus("pl")
    assert list(corpus) == ["train", "validation", "test"]
    assert corpus["train"].column_names == ["id", "group", "source", "topic", "text", "n_chars"]
    rows = [r for split in corpus.values() for r in split]
    assert all(r["n_chars"] == len(r["text"]) for r in rows)
    ids = {r["id"].rsplit(":", 1)[1] for r in rows}  # ids are "<source spec>:<id>"
    assert len(ids) == 80 and not ids & {"x-exact", "x-near", "x-english", "x-short"}
    stats = load_stats("pl")
    assert stats["total"]["documents"] == 80
    assert sum(stats["splits"][s]["characters"] for s in ("train", "validation", "test")) == \
        stats["total"]["characters"]
    assert stats["dropped"]["exact_duplicates"]["documents"] == 1
    assert stats["dropped"]["near_duplicates"]["documents"] == 1
    assert stats["dropped"]["language_filter"]["documents"] == 1
    assert stats["dropped"]["min_chars"]["documents"] == 1
    source = stats["sources"][f"local:{jsonl}"]
    assert source["read"]["documents"] == 84 and source["train"]["documents"] > 60
    manifest = load_manifest("pl")
    assert manifest["parameters"]["min_chars"] == 100 and manifest["packages"] == []
    assert len(load_pairs("pl")["train"]) == 0


def test_split_is_deterministic_per_seed(home: Path, jsonl: Path) -> None:
    a = build_corpus("pl", tag="a", sources=[f"local:{jsonl}"], seed=1, min_chars=100)
    b = build_corpus("pl", tag="b", sources=[f"local:{jsonl}"], seed=1, min_chars=100)
    c = build_corpus("pl", tag="c", sources=[f"local:{jsonl}"], seed=2, min_chars=100)
    for part in ("dataset", "pairs"):
        assert _files(a / part) == _files(b / part)  # byte-identical
    assert _files(a / "dataset") != _files(c / "dataset")
    assert set(load_corpus("pl", "a")["test"]["id"]) != set(load_corpus("pl", "c")["test"]["id"])
    # the split of a group depends on (seed, group) only
    for row in load_corpus("pl", "a")["validation"]:
        split = assign_split(row["group"], seed=1, validation_fraction=0.05, test_fraction=0.05)
        assert split == "validation"


def _shingles(text: str) -> set[str]:
    words = text.lower().split()
    return {" ".join(words[i : i + 5]) for i in range(max(1, len(words) - 4))}


def test_no_group_or_near_duplicate_across_splits(home: Path, jsonl: Path) -> None:
    build_corpus("pl", sources=[f"local:{jsonl}"], seed=1, min_chars=100, validation_fraction=0.3,
                 test_fraction=0.3)
    corpus = load_corpus("pl")
    groups = {s: set(corpus[s]["group"]) for s in corpus}
    assert not groups["train"] & groups["test"]
    assert not groups["train"] & groups["validation"] and not groups["validation"] & groups["test"]
    assert groups["test"] and groups["validation"]
    train = [_shingles(t) for t in corpus["train"]["text"]]
    for text in list(corpus["test"]["text"]) + list(corpus["validation"]["text"]):
        held = _shingles(text)
        assert max(len(held & t) / len(held | t) for t in train) < 0.8


# ---------------------------------------------------------------- pairs (fake LibreOffice help)


def _help_page(paragraphs: list[tuple[str, str]]) -> str:
    body = "\n".join(f'<p id="{pid}" class="paragraph">{text}</p>' for pid, text in paragraphs)
    return f"<html><body><h1 id=\"hd_1\">Tytuł</h1>\n{body}</body></html>"


@pytest.fixture
def fake_help(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """40 Polish help files (with English twins) in four modules; a shared target
    sentence appears in every file, so held-out copies must be dropped."""
    import lib.packages

    rng = random.Random(3)
    roots = {name: tmp_path / name for name in ("libreoffice-help-pl", "libreoffice-help-en-us")}
    for i in range(40):
        rel = f"{('swriter', 'scalc', 'simpress', 'shared')[i % 4]}/01/{i:08d}.html"
        pl = [(f"par_{j}", polish(rng, 2)) for j in range(4)] + [("par_same", "Kliknij przycisk OK.")]
        en = [(pid, f"English text {i} {j}") for j, (pid, _) in enumerate(pl[:4])]
        en.append(("par_same", "Click OK."))
        for name, lang, page in (("libreoffice-help-pl", "pl", pl), ("libreoffice-help-en-us", "en-US", en)):
            file = roots[name] / "usr/share/libreoffice/help" / lang / "text" / rel
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(_help_page(page), encoding="utf-8")
    monkeypatch.setattr(lib.packages, "debian_package", lambda name: roots[name])


def test_pairs_follow_their_file(home: Path, fake_help: None) -> None:
    build_corpus("pl", sources=["libreoffice"], min_chars=50, validation_fraction=0.2, test_fraction=0.2)
    docs = load_corpus("pl")
    pairs = load_pairs("pl")
    doc_split = {g: s for s in docs for g in docs[s]["group"]}
    assert len(doc_split) == 40
    for split in pairs:
        for row in pairs[split]:
            assert doc_split[row["group"]] == split
            assert row["topic"] == row["group"].split("/")[0]
    # "Kliknij przycisk OK." is a train target: its validation/test copies are gone,
    # and its other train copies are exact duplicates
    assert "Kliknij przycisk OK." in list(pairs["train"]["target"])
    assert "Kliknij przycisk OK." not in list(pairs["test"]["target"]) + list(pairs["validation"]["target"])
    stats = load_stats("pl")
    assert stats["pairs"]["dropped"]["exact_duplicates"] + stats["pairs"]["dropped"]["target_in_train"] >= 39
    assert stats["sources"]["libreoffice"]["pairs"]["train"] == len(pairs["train"])


# ---------------------------------------------------------------- other local formats and options


def test_local_txt_and_parquet(home: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(11)
    (tmp_path / "a.txt").write_text("\n\n".join(polish(rng, 3) for _ in range(10)), encoding="utf-8")
    pq.write_table(pa.table({"text": [polish(rng, 3) for _ in range(10)]}), tmp_path / "b.parquet")
    build_corpus("pl", sources=[f"local:{tmp_path / 'a.txt'}", f"local:{tmp_path / 'b.parquet'}"],
                 min_chars=50, validation_fraction=0.0, test_fraction=0.0)
    corpus = load_corpus("pl")
    assert len(corpus["train"]) == 20 and len(corpus["test"]) == 0
    expected = {f"local:{tmp_path / 'a.txt'}", f"local:{tmp_path / 'b.parquet'}"}
    assert set(corpus["train"]["source"]) == expected


def test_existing_build_is_reused_unless_forced(home: Path, jsonl: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = build_mod.load_source
    monkeypatch.setattr(build_mod, "load_source", lambda *a, **k: calls.append(a) or real(*a, **k))
    path = build_corpus("pl", sources=[f"local:{jsonl}"], seed=1, min_chars=100)
    assert build_corpus("pl", sources=[f"local:{jsonl}"], seed=1, min_chars=100) == path
    assert len(calls) == 1
    # another build under the same tag is refused, naming what differs and how to proceed
    with pytest.raises(CorpusError, match=r"pl/default corpus .* built with different parameters: "
                                          r"min_chars 100 \(asked: 150\).*--force.*another corpus_tag"):
        build_corpus("pl", sources=[f"local:{jsonl}"], seed=1, min_chars=150)
    assert len(calls) == 1
    build_corpus("pl", sources=[f"local:{jsonl}"], seed=1, min_chars=100, force=True)
    assert len(calls) == 2
    assert not list(path.parent.glob(".tmp-*"))


def test_max_docs_per_source_is_deterministic(home: Path, jsonl: Path) -> None:
    few = dict(max_docs_per_source=10, min_chars=100, validation_fraction=0, test_fraction=0)  # 5 groups
    build_corpus("pl", tag="t1", sources=[f"local:{jsonl}"], **few)
    build_corpus("pl", tag="t2", sources=[f"local:{jsonl}"], **few)
    ids = [sorted(r["id"] for s in load_corpus("pl", t).values() for r in s) for t in ("t1", "t2")]
    assert ids[0] == ids[1] and 0 < len(ids[0]) <= 10


def test_token_stats_use_the_named_tokenizers(home: Path, jsonl: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    class WordTokenizer:
        def __call__(self, texts, add_special_tokens=False, verbose=False):
            return {"input_ids": [t.split() for t in texts]}

    fake = types.ModuleType("lib.models")
    fake.load_tokenizer = lambda spec: WordTokenizer()
    monkeypatch.setitem(sys.modules, "lib.models", fake)
    build_corpus("pl", sources=[f"local:{jsonl}"], seed=1, min_chars=100, tokenizers=["words"])
    stats = load_stats("pl")
    for split in ("train", "validation", "test"):
        assert stats["splits"][split]["tokens"] == {"words": stats["splits"][split]["words"]}
    assert load_manifest("pl")["parameters"]["tokenizers"] == ["words"]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"language": "xx"}, CorpusError, "unknown language 'xx'.*pl, tr, ru, en"),
        ({"sources": ["wikipedia"]}, CorpusError, "unknown source 'wikipedia'"),
        ({"sources": ["rl_wsd"]}, CorpusError, "'rl_wsd' has no 'pl' text"),
        ({"sources": ["local:/nonexistent/file.txt"]}, FileNotFoundError, "does not exist"),
        ({"validation_fraction": -0.1}, CorpusError, "validation_fraction must be in"),
        ({"test_fraction": 1.0}, CorpusError, "test_fraction must be in"),
        ({"validation_fraction": 0.5, "test_fraction": 0.5}, CorpusError, "must be below 1"),
        ({"near_dup_threshold": 0.0}, CorpusError, "near_dup_threshold"),
        ({"min_chars": -1}, CorpusError, "min_chars"),
        ({"tag": "../x"}, CorpusError, "bad corpus tag"),
    ],
)
def test_bad_inputs_fail_before_any_work(home: Path, jsonl: Path, monkeypatch: pytest.MonkeyPatch,
                                         kwargs: dict, error: type, message: str) -> None:
    monkeypatch.setattr(build_mod, "load_source", lambda *a, **k: pytest.fail("read a source"))
    args = {"language": "pl", "sources": [f"local:{jsonl}"]} | kwargs
    with pytest.raises(error, match=message):
        build_corpus(args.pop("language"), **args)


def test_empty_corpus_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    english = tmp_path / "english.txt"
    english.write_text(f"{ENGLISH}\n\n{ENGLISH} Again.\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no documents left after cleaning.*language_filter: 2"):
        build_corpus("pl", sources=[f"local:{english}"], min_chars=10)
    assert not corpus_path("pl").exists()


def test_loading_an_unbuilt_corpus_says_how_to_build_it(home: Path) -> None:
    with pytest.raises(CorpusNotBuiltError,
                       match=r"build it first: python -m lib prepare --language ru -p corpus_tag=nothing"):
        load_corpus("ru", "nothing")


def test_interrupted_build_leaves_nothing_complete(home: Path, jsonl: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = build_mod._save
    saved = []

    def crash_on_pairs(path, rows, features):
        if path.name == "pairs":
            raise KeyboardInterrupt("simulated interruption")
        saved.append(path)
        return real_save(path, rows, features)

    monkeypatch.setattr(build_mod, "_save", crash_on_pairs)
    with pytest.raises(KeyboardInterrupt):
        build_corpus("pl", sources=[f"local:{jsonl}"], seed=1, min_chars=100)
    assert saved  # it got as far as writing the documents
    assert not corpus_path("pl").exists()
    assert not list(corpus_path("pl").parent.glob(".tmp-*"))
    with pytest.raises(CorpusNotBuiltError):
        load_corpus("pl")

    # a build killed outright leaves a temporary directory: never loadable, removed next time
    stale = corpus_path("pl").parent / ".tmp-default-999999999-deadbeef"
    (stale / "dataset").mkdir(parents=True)
    (stale / "manifest.json").write_text("{}")
    with pytest.raises(CorpusNotBuiltError):
        load_corpus("pl")
    monkeypatch.setattr(build_mod, "_save", real_save)
    build_corpus("pl", sources=[f"local:{jsonl}"], seed=1, min_chars=100)
    assert not stale.exists() and len(load_corpus("pl")["train"]) > 0


# ---------------------------------------------------------------- the real packages, capped


@pytest.fixture
def real_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home whose downloads/ is the real package cache (fetched once per machine)."""
    from lib.paths import downloads_dir

    cache = downloads_dir()
    path = tmp_path / "real_home"
    path.mkdir()
    (path / "downloads").symlink_to(cache, target_is_directory=True)
    monkeypatch.setenv("LANGADAPT_HOME", str(path))
    return path


@pytest.mark.parametrize("language", ["pl", "ru"])
def test_tiny_build_from_the_real_packages(real_home: Path, language: str) -> None:
    from lib.packages import PackageError

    try:
        build_corpus(language, tag="tiny", max_docs_per_source=12, min_chars=100,
                     validation_fraction=0.25, test_fraction=0.25)
    except PackageError as exc:
        pytest.skip(f"packaged sources not available: {exc}")
    docs, pairs = load_corpus(language, "tiny"), load_pairs(language, "tiny")
    stats, manifest = load_stats(language, "tiny"), load_manifest(language, "tiny")
    assert set(stats["sources"]) == set(manifest["parameters"]["expanded_sources"])
    for source, entry in stats["sources"].items():
        assert entry["read"]["documents"] <= 12, source
    doc_split = {g: s for s in docs for g in docs[s]["group"]}
    for split in pairs:
        for row in pairs[split]:
            expected = assign_split(row["group"], seed=1234, validation_fraction=0.25, test_fraction=0.25)
            assert split == expected == doc_split.get(row["group"], expected)
    assert len(pairs["train"]) > 0
    assert any(m.startswith(f"libreoffice-help-{language}_") for m in manifest["packages"])
