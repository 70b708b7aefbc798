"""lib.corpus.general_english: the selection rules on a fake package layout, and on the real
Debian packages that its text shares no run of words with any target corpus's sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib.corpus import general_english as G
from lib.corpus.sources import CorpusError, load_source, source_names
from lib.languages import TARGET_LANGUAGES

QUOTED = "A couple of months in the laboratory can frequently save a couple of hours in the library."


def _package(root: Path, folder: str, files: dict[str, str]) -> Path:
    directory = root / folder
    directory.mkdir(parents=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    (root / ".package").write_text(f"{root.name}_1.0_all.deb\n")
    return root


@pytest.fixture
def fake_packages(tmp_path, monkeypatch):
    """fortunes-min and fortunes with every chosen file (12 entries in 'people', one quoted by
    fortunes-pl), a left-out 'computers' file, and the target-language fortune packages."""
    import lib.packages

    entries = {name: f"The {name} entry.\n%\n" for name in G.FORTUNE_FILES}
    entries["people"] = "".join(f"Person\tnumber   {i} said\n  something.\n%\n" for i in range(12))
    entries["wisdom"] = f"Wise words here.\n%\n{QUOTED}\n%\n"
    minimal = ("fortunes", "literature", "riddles")
    roots = {
        "fortunes-min": _package(tmp_path / "fortunes-min", G.FORTUNES_DIR,
                                 {k: v for k, v in entries.items() if k in minimal}),
        "fortunes": _package(tmp_path / "fortunes", G.FORTUNES_DIR,
                             {**{k: v for k, v in entries.items() if k not in minimal},
                              "computers": "COMPUTERS-ONLY text.\n%\n", "people.dat": "\x00"}),
        "fortunes-pl": _package(tmp_path / "fortunes-pl", f"{G.FORTUNES_DIR}/pl",
                                {"argante": f"<e-girl> ktoś napisał:\n{QUOTED}\n%\n"}),
        "fortunes-ru": _package(tmp_path / "fortunes-ru", f"{G.FORTUNES_DIR}/ru",
                                {"citaty": "Тише едешь — дальше будешь.\n%\n"}),
    }

    def fake(name: str) -> Path:
        if name not in roots:
            raise lib.packages.PackageError(f"no fake package {name}")
        return roots[name]

    monkeypatch.setattr(lib.packages, "debian_package", fake)
    return roots


def test_selection_rules(fake_packages):
    data = G.load_general_english()
    texts = {d.group: d.text for d in data.documents}
    assert all("COMPUTERS" not in t for t in texts.values())  # a left-out file is never read
    assert QUOTED not in "\n".join(texts.values())  # quoted by fortunes-pl: dropped
    assert texts["wisdom/0"] == "Wise words here."
    # 12 entries of one file: documents of 10 and 2 entries, normalized like corpus text
    assert texts["people/0"].split("\n")[:2] == ["Person number 0 said", "something."]
    assert len(texts["people/0"].split("\n")) == 20 and len(texts["people/1"].split("\n")) == 4
    assert {d.topic for d in data.documents} == set(G.FORTUNE_FILES)
    assert {d.source for d in data.documents} == {G.SOURCE} and {d.language for d in data.documents} == {"en"}
    assert data.packages == [f"{name}_1.0_all.deb" for name in ("fortunes-min", "fortunes", "fortunes-pl",
                                                                  "fortunes-ru")]


def test_subsets_are_deterministic_and_sized(fake_packages):
    everything = G.general_english_texts(0)
    assert sorted(everything) == sorted(d.text for d in G.load_general_english().documents)
    small = G.general_english_texts(60)
    assert small == G.general_english_texts(60)
    assert sum(map(len, small)) >= 60 and sum(map(len, small[:-1])) < 60
    assert set(small) < set(everything)
    with pytest.raises(CorpusError, match="max_chars must be >= 0"):
        G.general_english_texts(-1)


def test_a_missing_file_is_named(fake_packages):
    (fake_packages["fortunes"] / G.FORTUNES_DIR / "tao").unlink()
    with pytest.raises(CorpusError, match="lack the fortune file.s. tao under"):
        G.load_general_english()


def test_word_runs():
    assert G.word_runs("One, two; three four", n=3) == {"one two three", "two three four"}
    assert G.word_runs("too short", n=3) == set()


# ---------------------------------------------------------------- the real packages


def _real(fn, *args, **kwargs):
    from lib.packages import PackageError

    try:
        return fn(*args, **kwargs)
    except PackageError as exc:  # no apt access on this machine
        pytest.skip(f"packaged source not available: {exc}")


def test_real_text_is_large_english_and_mixed():
    data = _real(G.load_general_english)
    assert sum(len(d.text) for d in data.documents) > 1_500_000
    assert {d.topic for d in data.documents} == set(G.FORTUNE_FILES)
    assert any(p.startswith("fortunes_") for p in data.packages)
    chosen = G.general_english_texts(30_000)
    topics = {d.text: d.topic for d in data.documents}
    assert 30_000 <= sum(map(len, chosen)) < 40_000 and len({topics[t] for t in chosen}) >= 10


@pytest.mark.slow
def test_real_text_shares_no_run_of_words_with_any_target_source():
    """Every packaged source of pl, tr and ru as read, before cleaning: a superset of the text any
    of their corpora trains on (about a minute, mostly LibreOffice help parsing)."""
    runs: set[str] = set()
    for document in _real(G.load_general_english).documents:
        runs |= G.word_runs(document.text)
    shared = {}
    for language in TARGET_LANGUAGES:
        for source in source_names(language):
            for document in _real(load_source, source, language).documents:
                hits = G.word_runs(document.text) & runs
                if hits:
                    shared[document.id] = sorted(hits)[:3]
    assert not shared
