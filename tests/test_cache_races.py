"""Shared caches when two processes create the same item at once (a sweep with ``--workers``).

Each builder is raced deterministically: "another process" renames its complete item into place
right before this one's publish step. The call must return that item (the very directory, which
others may be reading: never deleted or replaced), leave no temporary directory behind, and a
build that genuinely fails must still raise its error. Two real processes (and two threads
fetching one package) publishing at once end the same way.
"""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

import lib.models
import lib.packages
import lib.staging
from lib.staging import identity, publish, staging_dir

WINNER = "built-by-the-other-process"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An artifact directory of this test's own (no shared cache: every item is built here)."""
    monkeypatch.setenv("LANGADAPT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def hidden(directory: Path) -> list[str]:
    """Temporary directories (hidden names) left next to the cached items."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def other_process_first(monkeypatch, module, write) -> dict:
    """Before ``module``'s publish step, another process renames its complete build (made by
    ``write(dir)``) into place. Returns what happened: the winner's identity, publish's answer."""
    real = module.publish
    seen: dict = {}

    def racing(tmp, final, **kwargs):
        theirs = final.parent / f".other-{final.name}"
        theirs.mkdir(parents=True)
        write(theirs)
        (theirs / WINNER).write_text("theirs\n")
        theirs.rename(final)
        seen["winner"] = identity(final)
        seen["published"] = real(tmp, final, **kwargs)
        return seen["published"]

    monkeypatch.setattr(module, "publish", racing)
    return seen


def kept_the_winner(dest: Path, seen: dict) -> bool:
    return seen["published"] is False and identity(dest) == seen["winner"] and (dest / WINNER).is_file()


# ---------------------------------------------------------------- lib.staging.publish


def build(final: Path, label: str, n_files: int = 3) -> Path:
    tmp = staging_dir(final)
    for i in range(n_files):
        (tmp / f"part-{i}").write_text(label)
    return tmp


def test_publish_keeps_a_build_another_process_published_while_this_one_built(tmp_path):
    final = tmp_path / "corpus"
    tmp = build(final, "mine")
    theirs = build(final, "theirs")
    assert publish(theirs, final) is True
    before = identity(final)
    assert publish(tmp, final) is False  # the other won: its build stays, this one is dropped
    assert identity(final) == before and (final / "part-0").read_text() == "theirs"
    assert hidden(tmp_path) == []


def test_publish_replaces_the_build_that_was_there_when_it_began(tmp_path):
    final = tmp_path / "corpus"
    publish(build(final, "old"), final)
    assert publish(build(final, "new"), final) is True  # a forced rebuild still replaces the older build
    assert (final / "part-0").read_text() == "new" and hidden(tmp_path) == []


def test_a_build_published_between_the_look_and_the_rename_is_kept(tmp_path, monkeypatch):
    final = tmp_path / "corpus"
    tmp = build(final, "mine")
    publish(build(final, "theirs"), final)
    looks = []
    real = lib.staging.identity

    def late(path):  # the first look happened before the other process renamed its build into place
        looks.append(path)
        return None if len(looks) == 1 else real(path)

    monkeypatch.setattr(lib.staging, "identity", late)
    assert publish(tmp, final) is False  # the rename failed on the other's build: it was looked at again
    assert len(looks) == 2 and (final / "part-0").read_text() == "theirs" and hidden(tmp_path) == []


def test_a_failed_publish_raises_and_keeps_the_older_build(tmp_path):
    final = tmp_path / "corpus"
    publish(build(final, "old"), final)
    broken = build(final, "new")
    shutil.rmtree(broken)  # the build produced nothing to publish
    with pytest.raises(FileNotFoundError, match=broken.name):
        publish(broken, final)
    assert (final / "part-0").read_text() == "old" and hidden(tmp_path) == []


def _race(final: str, label: str, barrier, results) -> None:
    tmp = build(Path(final), label, n_files=20)
    barrier.wait()
    results.put((label, publish(tmp, Path(final))))


def test_two_processes_publishing_at_once_leave_one_complete_build(tmp_path):
    ctx = multiprocessing.get_context("fork")  # the children only rename directories
    for round_ in range(4):
        final = tmp_path / f"corpus-{round_}"
        barrier, results = ctx.Barrier(2), ctx.Queue()
        workers = [ctx.Process(target=_race, args=(str(final), label, barrier, results)) for label in ("a", "b")]
        for worker in workers:
            worker.start()
        outcome = dict(results.get(timeout=60) for _ in workers)
        for worker in workers:
            worker.join(timeout=60)
            assert worker.exitcode == 0
        assert sorted(outcome.values()) == [False, True]
        winner = next(label for label, won in outcome.items() if won)
        assert {p.read_text() for p in final.iterdir()} == {winner} and len(list(final.iterdir())) == 20
    assert hidden(tmp_path) == []


# ---------------------------------------------------------------- lib.packages


def fake_pip_download(payload: str = "payload", barrier=None):
    """``pip download`` of a tiny wheel into the ``-d`` directory (no network)."""
    def run(cmd, what):
        if barrier is not None:
            barrier.wait(timeout=30)  # both fetches are past their cache check before either publishes
        target = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(target / "demo-1.0-py3-none-any.whl", "w") as zf:
            zf.writestr("demo/data.txt", payload)
    return run


def test_pypi_package_uses_the_tree_another_process_unpacked_first(home, monkeypatch):
    monkeypatch.setattr(lib.packages, "_run", fake_pip_download())
    seen = other_process_first(monkeypatch, lib.packages, lambda d: (d / ".package").write_text("theirs.whl\n"))
    dest = lib.packages.pypi_package("demo", "1.0")
    assert kept_the_winner(dest, seen) and (dest / ".package").read_text() == "theirs.whl\n"
    assert hidden(dest.parent) == []


def test_debian_package_uses_the_tree_another_process_unpacked_first(home, monkeypatch, tmp_path):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: demo\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: t <t@example.org>\nDescription: a test package\n")
    (root / "usr" / "share" / "demo").mkdir(parents=True)
    (root / "usr" / "share" / "demo" / "data.txt").write_text("payload")
    deb = tmp_path / "demo_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(root), str(deb)], check=True, capture_output=True)
    monkeypatch.setattr(lib.packages, "_apt_download", lambda name, workdir: shutil.copy(deb, workdir))
    seen = other_process_first(monkeypatch, lib.packages, lambda d: (d / ".package").write_text("theirs.deb\n"))
    dest = lib.packages.debian_package("demo")
    assert kept_the_winner(dest, seen) and hidden(dest.parent) == []


def test_a_failed_download_raises_and_leaves_nothing(home, monkeypatch):
    monkeypatch.setattr(lib.packages, "_run", lambda cmd, what: None)  # "succeeds" but downloads nothing
    with pytest.raises(lib.packages.PackageError, match="gave 0 files, expected 1"):
        lib.packages.pypi_package("demo", "1.0")
    pypi = home / "downloads" / "pypi"
    assert list(pypi.iterdir()) == []


def test_two_threads_fetching_one_package_share_one_tree(home, monkeypatch):
    monkeypatch.setattr(lib.packages, "_run", fake_pip_download(barrier=threading.Barrier(2)))
    results, errors = [], []

    def fetch():
        try:
            results.append(lib.packages.pypi_package("demo", "1.0"))
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    dest = results[0]
    assert (dest / "demo" / "data.txt").read_text() == "payload" and (dest / ".package").is_file()
    assert hidden(dest.parent) == []


# ---------------------------------------------------------------- lib.models


@pytest.fixture
def tiny_entry(tmp_path, monkeypatch) -> str:
    """A registry entry built from a tokenizer saved here (no packaged model, no download)."""
    from tests.test_vocab_fixtures import old_tokenizer, tiny_model

    source = tmp_path / "source"
    tokenizer = old_tokenizer("byte_level")
    tiny_model(tokenizer).save_pretrained(source)
    tokenizer.save_pretrained(source)
    entry = lib.models.TinyRandom(description="a race test model", tokenizer_from=str(source),
                                  config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                              num_attention_heads=2, num_key_value_heads=1,
                                              max_position_embeddings=64))
    monkeypatch.setitem(lib.models.REGISTRY, "race-tiny", entry)
    return "race-tiny"


def test_a_model_another_process_converted_first_is_used(home, tiny_entry, monkeypatch):
    def their_checkpoint(directory: Path) -> None:
        (directory / "config.json").write_text("{}\n")

    seen = other_process_first(monkeypatch, lib.models, their_checkpoint)
    dest = Path(lib.models.resolve(tiny_entry))
    assert kept_the_winner(dest, seen) and hidden(dest.parent) == []


def test_an_incomplete_model_directory_is_replaced(home, tiny_entry):
    dest = home / "models" / tiny_entry
    dest.mkdir(parents=True)
    (dest / "half-written").write_text("")  # no config.json: not a finished checkpoint
    assert Path(lib.models.resolve(tiny_entry)) == dest
    assert (dest / "config.json").is_file() and not (dest / "half-written").exists()
    assert hidden(dest.parent) == []


def test_a_failed_model_build_raises_and_leaves_nothing(home, tiny_entry, monkeypatch, tmp_path):
    entry = lib.models.REGISTRY[tiny_entry]
    broken = lib.models.TinyRandom(description=entry.description, tokenizer_from=str(tmp_path / "missing"),
                                   config=entry.config)
    monkeypatch.setitem(lib.models.REGISTRY, tiny_entry, broken)
    with pytest.raises(lib.models.ModelSpecError, match="missing"):
        lib.models.resolve(tiny_entry)
    assert list((home / "models").iterdir()) == []


# ---------------------------------------------------------------- lib.vocab.paper_tokenizers


@pytest.fixture
def fake_mistral_package(tmp_path, monkeypatch) -> Path:
    """mistral-common's unpacked tree with a tiny SentencePiece model where the real one is."""
    from lib.vocab.paper_tokenizers import PAPER_TOKENIZERS
    from tests.test_vocab_fixtures import sentencepiece_tokenizer

    sentencepiece_tokenizer(tmp_path)  # trains tmp_path/sp.model
    root = tmp_path / "mistral-common"
    model = root / PAPER_TOKENIZERS["mistral-7b-v0.1"].member
    model.parent.mkdir(parents=True)
    shutil.copy(tmp_path / "sp.model", model)
    monkeypatch.setattr(lib.packages, "pypi_package", lambda name, version: root)
    return root


def test_a_paper_tokenizer_another_process_converted_first_is_used(home, fake_mistral_package, monkeypatch):
    from lib.vocab.paper_tokenizers import paper_tokenizer_dir

    seen = other_process_first(monkeypatch, lib.staging, lambda d: (d / "tokenizer.json").write_text("{}\n"))
    dest = paper_tokenizer_dir("mistral-7b-v0.1")
    assert kept_the_winner(dest, seen) and hidden(dest.parent) == []


def test_a_paper_tokenizer_is_converted_once_and_reused(home, fake_mistral_package):
    from lib.vocab.paper_tokenizers import paper_tokenizer, paper_tokenizer_dir

    dest = paper_tokenizer_dir("mistral-7b-v0.1")
    assert paper_tokenizer_dir("mistral-7b-v0.1") == dest and identity(dest) is not None
    assert paper_tokenizer("mistral-7b-v0.1").bos_token == "<s>" and hidden(dest.parent) == []


def test_a_paper_tokenizer_missing_from_its_package_raises_and_leaves_nothing(home, fake_mistral_package):
    from lib.vocab import VocabError
    from lib.vocab.paper_tokenizers import PAPER_TOKENIZERS, paper_tokenizer_dir

    (fake_mistral_package / PAPER_TOKENIZERS["mistral-7b-v0.1"].member).unlink()
    with pytest.raises(VocabError, match="does not ship"):
        paper_tokenizer_dir("mistral-7b-v0.1")
    tokenizers = home / "models" / "tokenizers"
    assert not tokenizers.exists() or list(tokenizers.iterdir()) == []
