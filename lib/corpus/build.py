"""Build, save and load a cleaned, split corpus for one language.

Layout of ``corpora_dir()/<language>/<tag>/``::

    dataset/        DatasetDict (train/validation/test): id, group, source, topic, text, n_chars
    pairs/          DatasetDict, same splits: id, group, source, topic, en, target
    stats.json      sizes per split and per source, what each cleaning step dropped
    manifest.json   the parameters and the package files read; written last

A build is written to a temporary sibling directory and renamed into place at
the end, so an interrupted build never looks complete. An existing build is
reused only when it was made with the parameters asked for (anything else is a
CorpusError naming the differences: rebuild with ``force`` or use another tag);
a validation or test split that its fraction leaves empty is refused before
anything is published; an unwritable corpus directory is refused before any work.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lib.corpus.cleaning import (
    MINHASH_PERMUTATIONS,
    MINHASH_SEED,
    SHINGLE_WORDS,
    CleaningReport,
    clean_documents,
    clean_pairs,
    default_workers,
)
from lib.corpus.sources import (
    CorpusError,
    Document,
    Pair,
    SourceData,
    check_language,
    expand_sources,
    load_source,
    pick,
)
from lib.paths import corpora_dir
from lib.staging import is_plain_name, publish, remove_stale, staging_dir

SPLITS = ("train", "validation", "test")
DOCUMENT_COLUMNS = ("id", "group", "source", "topic", "text", "n_chars")
PAIR_COLUMNS = ("id", "group", "source", "topic", "en", "target")
_SHARD_BYTES = 500_000_000


class CorpusNotBuiltError(FileNotFoundError):
    """The corpus asked for has not been built (or its build did not finish)."""


# ------------------------------------------------------------------ paths and loading


def corpus_path(language: str, tag: str = "default") -> Path:
    """Where the corpus for ``language``/``tag`` lives (whether or not it is built)."""
    check_language(language)
    _check_tag(tag)
    return corpora_dir() / language / tag


def _check_tag(tag: str) -> None:
    if not is_plain_name(tag):
        raise CorpusError(f"bad corpus tag {tag!r}: use a plain name such as 'default' or 'tiny'")


def _built(language: str, tag: str) -> Path:
    path = corpus_path(language, tag)
    if not (path / "manifest.json").is_file():
        raise CorpusNotBuiltError(
            f"no {language!r} corpus with tag {tag!r} at {path}; build it first: "
            f"python -m lib prepare --language {language} -p corpus_tag={tag}"
        )
    return path


def load_corpus(language: str, tag: str = "default"):
    """The built corpus as a ``datasets.DatasetDict`` (train/validation/test)."""
    import datasets

    return datasets.load_from_disk(str(_built(language, tag) / "dataset"))


def load_pairs(language: str, tag: str = "default"):
    """The aligned English<->target pairs as a ``datasets.DatasetDict`` (same splits)."""
    import datasets

    return datasets.load_from_disk(str(_built(language, tag) / "pairs"))


def load_stats(language: str, tag: str = "default") -> dict[str, Any]:
    return json.loads((_built(language, tag) / "stats.json").read_text())


def load_manifest(language: str, tag: str = "default") -> dict[str, Any]:
    return json.loads((_built(language, tag) / "manifest.json").read_text())


# ------------------------------------------------------------------ splitting


def assign_split(group: str, *, seed: int, validation_fraction: float, test_fraction: float) -> str:
    """The split of ``group``: a hash of (seed, group), so independent of every
    other document and stable across runs, machines and corpus sizes."""
    digest = hashlib.blake2b(f"{seed}\x00{group}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + validation_fraction:
        return "validation"
    return "train"


# ------------------------------------------------------------------ the build


def _validate(language: str, tag: str, sources: Sequence[str], seed: int, validation_fraction: float,
              test_fraction: float, min_chars: int, near_dup_threshold: float,
              max_docs_per_source: int, tokenizers: Sequence[str]) -> list[str]:
    check_language(language)
    _check_tag(tag)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CorpusError(f"seed must be an integer, got {seed!r}")
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise CorpusError(f"{name} must be in [0, 1), got {value!r}")
    if validation_fraction + test_fraction >= 1.0:
        raise CorpusError(
            f"validation_fraction + test_fraction must be below 1 (nothing would be left to "
            f"train on), got {validation_fraction} + {test_fraction}"
        )
    if not isinstance(min_chars, int) or min_chars < 0:
        raise CorpusError(f"min_chars must be a non-negative integer, got {min_chars!r}")
    if not isinstance(near_dup_threshold, (int, float)) or not 0.0 < near_dup_threshold <= 1.0:
        raise CorpusError(f"near_dup_threshold must be in (0, 1], got {near_dup_threshold!r}")
    if not isinstance(max_docs_per_source, int) or max_docs_per_source < 0:
        raise CorpusError(f"max_docs_per_source must be >= 0 (0: no cap), got {max_docs_per_source!r}")
    if isinstance(tokenizers, str):
        raise CorpusError("tokenizers must be a list of names, e.g. ['smollm2-135m-instruct']")
    return expand_sources(list(sources) if not isinstance(sources, str) else [sources], language)


def build_corpus(
    language: str,
    *,
    tag: str = "default",
    sources: Sequence[str] = ("packaged",),
    seed: int = 1234,
    validation_fraction: float = 0.05,
    test_fraction: float = 0.05,
    min_chars: int = 200,
    near_dup_threshold: float = 0.8,
    max_docs_per_source: int = 0,
    tokenizers: Sequence[str] = (),
    force: bool = False,
    text_field: str = "text",
) -> Path:
    """Build the corpus for ``language`` and return its directory.

    ``sources``: ``"packaged"`` (every packaged source of the language), packaged
    names (see ``source_names``), ``local:PATH``, ``hf:DATASET[:CONFIG]`` or
    ``speakleash:NAME``. ``text_field`` names the text column of ``hf:`` and
    ``local:`` (jsonl/parquet) sources. Cleaning runs on the whole corpus,
    then each group goes to a split by a hash of (seed, group).
    ``max_docs_per_source > 0`` keeps that many documents per source (tiny
    profiles). An existing build is returned as is unless ``force``.
    """
    started = time.time()
    final, parameters, reuse = _plan(
        language, tag=tag, sources=sources, seed=seed, validation_fraction=validation_fraction,
        test_fraction=test_fraction, min_chars=min_chars, near_dup_threshold=near_dup_threshold,
        max_docs_per_source=max_docs_per_source, tokenizers=tokenizers, force=force, text_field=text_field)
    if reuse:
        return final
    expanded = parameters["expanded_sources"]
    loaded_tokenizers = _load_tokenizers(tokenizers)  # fail on a bad name before the long work

    data: dict[str, SourceData] = {}
    for spec in expanded:
        part = load_source(spec, language, limit=max_docs_per_source, text_field=text_field)
        data[spec] = _cap(part, max_docs_per_source)
    raw_docs = [d for part in data.values() for d in part.documents]
    raw_pairs = [p for part in data.values() for p in part.pairs]
    if not raw_docs:
        raise CorpusError(f"sources {expanded} gave no documents for {language!r}")

    docs, report = clean_documents(raw_docs, language=language, min_chars=min_chars,
                                   near_dup_threshold=near_dup_threshold, workers=default_workers())
    if not docs:
        raise CorpusError(
            f"no documents left after cleaning the {language!r} corpus "
            f"({len(raw_docs)} read; dropped per step: {_dropped_summary(report.steps)}); "
            "lower min_chars or check that the sources are in this language"
        )
    pairs, pair_drops = clean_pairs(raw_pairs)

    def split_of(group: str) -> str:
        return assign_split(group, seed=seed, validation_fraction=validation_fraction,
                            test_fraction=test_fraction)

    doc_splits: dict[str, list[Document]] = {name: [] for name in SPLITS}
    for doc in docs:
        doc_splits[split_of(doc.group)].append(doc)
    _check_splits(doc_splits, language=language, tag=tag, n_docs=len(docs),
                  fractions={"validation": validation_fraction, "test": test_fraction})
    pair_splits, split_drops = _split_pairs(pairs, split_of)
    pair_drops.update(split_drops)

    stats = _stats(language, tag, data, doc_splits, pair_splits, report, pair_drops,
                   loaded_tokenizers)
    manifest = {
        "language": language,
        "tag": tag,
        "parameters": parameters,
        "cleaning": {
            "unicode": "NFC",
            "language_id": "py3langid, target against English (per line)",
            "minhash": {"permutations": MINHASH_PERMUTATIONS, "seed": MINHASH_SEED,
                        "shingle_words": SHINGLE_WORDS},
        },
        "packages": sorted({pkg for part in data.values() for pkg in part.packages}),
        "versions": _versions(),
        "build_seconds": None,  # filled in just before the rename
    }
    _write(final, doc_splits, pair_splits, stats, manifest, started)
    return final


def check_build(language: str, **kwargs: Any) -> Path | None:
    """Everything ``build_corpus(language, **kwargs)`` checks before its work, without the work:
    the parameters, an existing build under the tag (made with other parameters: CorpusError),
    a writable corpus directory. Returns the existing build it would reuse, or None when it
    would build. Seconds, so ``python -m lib run`` can refuse a run before starting it."""
    final, _parameters, reuse = _plan(language, **kwargs)
    return final if reuse else None


def _plan(language: str, *, tag: str = "default", sources: Sequence[str] = ("packaged",), seed: int = 1234,
          validation_fraction: float = 0.05, test_fraction: float = 0.05, min_chars: int = 200,
          near_dup_threshold: float = 0.8, max_docs_per_source: int = 0, tokenizers: Sequence[str] = (),
          force: bool = False, text_field: str = "text") -> tuple[Path, dict[str, Any], bool]:
    """(final directory, the manifest's parameters, whether an existing build is reused)."""
    expanded = _validate(language, tag, sources, seed, validation_fraction, test_fraction,
                         min_chars, near_dup_threshold, max_docs_per_source, tokenizers)
    parameters = {
        "sources": list(sources) if not isinstance(sources, str) else [sources],
        "expanded_sources": expanded,
        "seed": seed,
        "validation_fraction": validation_fraction,
        "test_fraction": test_fraction,
        "min_chars": min_chars,
        "near_dup_threshold": near_dup_threshold,
        "max_docs_per_source": max_docs_per_source,
        "tokenizers": list(tokenizers),
        "text_field": text_field,
    }
    try:
        final = corpus_path(language, tag)
    except OSError as exc:  # the artifacts directory itself cannot be made or entered
        raise CorpusError(f"cannot create the corpus directory for {language}/{tag}: "
                          f"{exc.strerror or exc} ({exc.filename or ''}); set LANGADAPT_HOME to a "
                          "writable directory") from None
    if (final / "manifest.json").is_file() and not force:
        check_same_parameters(final, parameters, language=language, tag=tag)
        return final, parameters, True
    _check_writable(final.parent, f"{language}/{tag}")  # before the long work, not after it
    return final, parameters, False


def _check_splits(doc_splits: dict[str, list[Document]], *, language: str, tag: str, n_docs: int,
                  fractions: dict[str, float]) -> None:
    """Every split that should hold documents holds some (train always; validation and test
    when their fraction is above 0): an empty one would fail a later stage far from its cause."""
    groups = len({d.group for docs in doc_splits.values() for d in docs})
    if not doc_splits["train"]:
        raise CorpusError(
            f"the train split of the {language}/{tag} corpus is empty ({n_docs} documents in {groups} "
            "groups, all in validation/test); add documents or lower validation_fraction/test_fraction"
        )
    for split in ("validation", "test"):
        if fractions[split] > 0 and not doc_splits[split]:
            raise CorpusError(
                f"the {split} split of the {language}/{tag} corpus would be empty: {split}_fraction="
                f"{fractions[split]} of {n_docs} documents in {groups} groups (split by group) gave it none; "
                f"add documents (more or larger sources, a lower min_chars), raise {split}_fraction, "
                f"or set {split}_fraction=0 if no {split} split is needed"
            )


def _check_writable(directory: Path, what: str) -> None:
    """Fail at once, naming the directory, when the corpus cannot be written there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise CorpusError(f"cannot write the {what} corpus: {directory} is not writable "
                          f"({exc.strerror or exc}); set LANGADAPT_HOME to a writable directory") from None


# parameters that change the corpus itself (tokenizers only add token counts to stats.json)
_TEXT_FIELD_SOURCES = ("local:", "hf:")


def check_same_parameters(final: Path, parameters: dict[str, Any], *, language: str, tag: str) -> None:
    """An existing build is reused only when it was built as asked: otherwise the caller (a
    recorded run) would claim parameters the corpus does not have. Raises CorpusError naming
    each differing parameter (built vs asked) and how to proceed."""
    try:
        built = json.loads((final / "manifest.json").read_text()).get("parameters", {})
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise CorpusError(f"the {language}/{tag} corpus at {final} has an unreadable manifest.json ({exc}); "
                          f"rebuild it: python -m lib prepare --language {language} -p corpus_tag={tag} "
                          "--force") from None
    defaults = {name: p.default for name, p in inspect.signature(_plan).parameters.items()
                if p.default is not inspect.Parameter.empty}
    wanted = json.loads(json.dumps(parameters))
    differing: list[str] = []
    for key, value in wanted.items():
        have = built.get(key, json.loads(json.dumps(defaults.get(key))))  # older manifests: the default
        if key == "expanded_sources" and built.get("sources") != wanted["sources"]:
            continue  # reported as 'sources'
        if key == "tokenizers":
            if set(value) <= set(have or []):
                continue  # the stats already count these tokenizers' tokens
        elif key == "text_field":
            if have == value or not any(str(s).startswith(_TEXT_FIELD_SOURCES) for s in wanted["sources"]):
                continue  # read by local: and hf: sources only
        elif have == value:
            continue
        differing.append(f"{key} {json.dumps(have)} (asked: {json.dumps(value)})")
    if differing:
        raise CorpusError(
            f"the {language}/{tag} corpus at {final} was built with different parameters: "
            f"{'; '.join(differing)}. Rebuild it with these parameters (python -m lib prepare --language "
            f"{language} --force with the same -p options; a run of 01_prepare_data then finds it), "
            "or give this build another corpus_tag"
        )


def _cap(part: SourceData, limit: int) -> SourceData:
    """At most ``limit`` documents (whole groups, chosen by hash); pairs follow the groups kept."""
    if limit <= 0 or len(part.documents) <= limit:
        return part
    keep_groups = pick(sorted({d.group for d in part.documents}), limit)
    docs = [d for d in part.documents if d.group in keep_groups][:limit]
    groups = {d.group for d in docs}
    return SourceData(docs, [p for p in part.pairs if p.group in groups], part.packages)


def _split_pairs(pairs: list[Pair], split_of: Callable[[str], str]
                 ) -> tuple[dict[str, list[Pair]], dict[str, int]]:
    """Pairs go with their group. Held-out pairs whose target is also a train
    target are dropped (no leak through repeated UI strings); repeats of a pair
    within a split are dropped (the smallest id stays)."""
    splits: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for pair in sorted(pairs, key=lambda p: p.id):
        splits[split_of(pair.group)].append(pair)
    train_targets = {p.target for p in splits["train"]}
    drops = {"exact_duplicates": 0, "target_in_train": 0}
    for name in SPLITS:
        seen: set[tuple[str, str]] = set()
        kept = []
        for pair in splits[name]:
            if name != "train" and pair.target in train_targets:
                drops["target_in_train"] += 1
            elif (pair.en, pair.target) in seen:
                drops["exact_duplicates"] += 1
            else:
                seen.add((pair.en, pair.target))
                kept.append(pair)
        splits[name] = kept
    return splits, drops


def _dropped_summary(steps: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{step}: {counts.get('documents', 0)}" for step, counts in steps.items())


def _load_tokenizers(names: Sequence[str]) -> dict[str, Any]:
    if not names:
        return {}
    from lib.models import load_tokenizer  # heavy (transformers); only when asked for

    return {name: load_tokenizer(name) for name in names}


def _token_counts(tokenizer: Any, texts: list[str]) -> list[int]:
    counts: list[int] = []
    for start in range(0, len(texts), 256):
        batch = tokenizer(texts[start : start + 256], add_special_tokens=False, verbose=False)
        counts.extend(len(ids) for ids in batch["input_ids"])
    return counts


def _stats(language: str, tag: str, data: dict[str, SourceData], doc_splits: dict[str, list[Document]],
           pair_splits: dict[str, list[Pair]], report: CleaningReport, pair_drops: dict[str, int],
           tokenizers: dict[str, Any]) -> dict[str, Any]:
    tokens: dict[str, dict[str, int]] = {}  # tokenizer -> doc id -> tokens
    for name, tok in tokenizers.items():
        all_docs = [d for split in SPLITS for d in doc_splits[split]]
        counts = _token_counts(tok, [d.text for d in all_docs])
        tokens[name] = dict(zip((d.id for d in all_docs), counts, strict=True))

    def sizes(docs: list[Document]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "documents": len(docs),
            "characters": sum(len(d.text) for d in docs),
            "words": sum(len(d.text.split()) for d in docs),
        }
        if tokens:
            out["tokens"] = {name: sum(counts[d.id] for d in docs) for name, counts in tokens.items()}
        return out

    sources: dict[str, Any] = {}
    for spec, part in data.items():
        sources[spec] = {
            "read": {"documents": len(part.documents),
                     "characters": sum(len(d.text) for d in part.documents),
                     "pairs": len(part.pairs)},
            **{split: sizes([d for d in doc_splits[split] if d.source == spec])
               for split in SPLITS},
            "pairs": {split: sum(1 for p in pair_splits[split] if p.source == spec)
                      for split in SPLITS},
            "dropped": report.by_source.get(spec, {}),
        }
    all_docs = [d for split in SPLITS for d in doc_splits[split]]
    return {
        "language": language,
        "tag": tag,
        "total": sizes(all_docs),
        "splits": {split: sizes(doc_splits[split]) for split in SPLITS},
        "sources": sources,
        "pairs": {**{split: len(pair_splits[split]) for split in SPLITS}, "dropped": pair_drops},
        "dropped": report.steps,
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("datasets", "py3langid", "datasketch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def _write(final: Path, doc_splits: dict[str, list[Document]], pair_splits: dict[str, list[Pair]],
           stats: dict[str, Any], manifest: dict[str, Any], started: float) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    tmp = staging_dir(final)
    try:
        _save(tmp / "dataset", {s: [_doc_row(d) for d in doc_splits[s]] for s in SPLITS},
              _document_features())
        _save(tmp / "pairs", {s: [_pair_row(p) for p in pair_splits[s]] for s in SPLITS},
              _pair_features())
        stats_text = json.dumps(stats, indent=2, ensure_ascii=False, sort_keys=True)
        (tmp / "stats.json").write_text(stats_text + "\n")
        manifest["build_seconds"] = round(time.time() - started, 1)
        # the manifest marks a finished build: written last, then one rename
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise






def _doc_row(doc: Document) -> dict[str, Any]:
    return {"id": doc.id, "group": doc.group, "source": doc.source, "topic": doc.topic,
            "text": doc.text, "n_chars": len(doc.text)}


def _pair_row(pair: Pair) -> dict[str, Any]:
    return {"id": pair.id, "group": pair.group, "source": pair.source, "topic": pair.topic,
            "en": pair.en, "target": pair.target}


def _document_features():
    import datasets

    return datasets.Features({**{c: datasets.Value("string") for c in DOCUMENT_COLUMNS[:-1]},
                              "n_chars": datasets.Value("int64")})


def _pair_features():
    import datasets

    return datasets.Features({c: datasets.Value("string") for c in PAIR_COLUMNS})


def _save(path: Path, rows: dict[str, list[dict[str, Any]]], features) -> None:
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        splits = {}
        shards = {}
        for split in SPLITS:
            columns = {name: [row[name] for row in rows[split]] for name in features}
            splits[split] = datasets.Dataset.from_dict(columns, features=features)
            size = sum(len(str(v)) for row in rows[split] for v in row.values())
            # one shard at least: an empty split saved with zero shards cannot be loaded
            shards[split] = max(1, math.ceil(size / _SHARD_BYTES))
        datasets.DatasetDict(splits).save_to_disk(str(path), num_shards=shards)
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
