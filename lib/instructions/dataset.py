"""Build, save and load one language's instruction set.

    build_instructions("tr")                  # artifacts/instructions/tr/default/
    load_instructions("tr")["train"]          # a datasets.Dataset of prompt/completion examples

Steps, in order (each one's drops are counted per source in ``manifest.json``):

1. examples from every source (packaged builders, ``hf:``/``local:`` sets);
2. ``not_train``: packaged examples whose group the corpus does not assign to its
   train split (the builders already keep to train; this re-checks the promise);
3. ``leaks``: examples containing the text of an offline task's held-out item
   (``lib.instructions.leaks``);
4. ``duplicates``: repeats of a normalised (prompt, completion), and of a
   normalised prompt (one question, one answer); the smallest id of a source
   stays, earlier sources win;
5. ``capped``: beyond ``max_per_source`` after a shuffle with the seed;
6. the split: a hash of (seed, group or id), so one group never spans two
   splits. The hash is salted apart from the corpus's own (which would send every
   corpus-train group back to train). ``test`` holds prompts for generation samples.

A build goes to a temporary sibling directory and is renamed into place after
its manifest is written, so an interrupted build never looks complete.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lib.corpus.build import SPLITS  # the instruction splits follow the corpus splits
from lib.instructions.builders import BUILDERS, builder_names
from lib.instructions.hub import check_spec, is_hub_spec, load_instruction_set
from lib.instructions.records import (
    Example,
    InstructionDataError,
    InstructionsNotBuiltError,
    check_language,
    completion_text,
    normalise,
    prompt_text,
    stable_hash,
)
from lib.paths import artifacts_dir
from lib.staging import is_plain_name, publish, remove_stale, staging_dir

COLUMNS = ("id", "source", "group", "prompt", "completion")


# ---------------------------------------------------------------- paths and loading


def instructions_path(language: str, tag: str = "default") -> Path:
    """Where the instruction set for ``language``/``tag`` lives (whether or not it is built)."""
    check_language(language)
    _check_tag(tag, "tag")
    return artifacts_dir() / "instructions" / language / tag


def _check_tag(tag: str, what: str) -> None:
    if not is_plain_name(tag):
        raise InstructionDataError(f"bad {what} {tag!r}: use a plain name such as 'default' or 'tiny'")


def _built(language: str, tag: str) -> Path:
    path = instructions_path(language, tag)
    if not (path / "manifest.json").is_file():
        raise InstructionsNotBuiltError(
            f"no {language!r} instruction set with tag {tag!r} at {path}; build it first with "
            f"lib.instructions.build_instructions({language!r}, tag={tag!r})")
    return path


def load_instructions(language: str, tag: str = "default"):
    """The built instruction set as a ``datasets.DatasetDict`` (train/validation/test)."""
    import datasets

    return datasets.load_from_disk(str(_built(language, tag) / "dataset"))


def load_instructions_manifest(language: str, tag: str = "default") -> dict[str, Any]:
    return json.loads((_built(language, tag) / "manifest.json").read_text())


# ---------------------------------------------------------------- sources and parameters


def resolve_sources(sources: Sequence[str] | str, language: str) -> list[str]:
    """Expand ``"packaged"`` and check every spec, before any heavy work."""
    check_language(language)
    specs = [sources] if isinstance(sources, str) else list(sources)
    out: list[str] = []
    for spec in specs:
        if not isinstance(spec, str):
            raise InstructionDataError(f"a source must be a string such as 'packaged', got {spec!r}")
        names = builder_names(language) if spec == "packaged" else [spec]
        for name in names:
            if name in BUILDERS:
                if language not in BUILDERS[name].languages:
                    raise InstructionDataError(
                        f"source {name!r} exists for {', '.join(BUILDERS[name].languages)}, not {language!r}")
            elif is_hub_spec(name):
                check_spec(name)
            else:
                raise InstructionDataError(
                    f"unknown source {name!r}; known: 'packaged', {', '.join(map(repr, BUILDERS))}, "
                    "'hf:OWNER/NAME[:CONFIG]', 'local:PATH'")
            if name not in out:
                out.append(name)
    if not out:
        raise InstructionDataError("no sources given; use e.g. sources=['packaged']")
    return out


def _validate(seed: int, max_per_source: int, validation_fraction: float, test_fraction: float) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InstructionDataError(f"seed must be an integer, got {seed!r}")
    if isinstance(max_per_source, bool) or not isinstance(max_per_source, int) or max_per_source < 0:
        raise InstructionDataError(f"max_per_source must be >= 0 (0: no cap), got {max_per_source!r}")
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise InstructionDataError(f"{name} must be in [0, 1), got {value!r}")
    if validation_fraction + test_fraction >= 1.0:
        raise InstructionDataError(
            f"validation_fraction + test_fraction must be below 1, got {validation_fraction} + {test_fraction}")


def _corpus_manifest(language: str, corpus_tag: str) -> dict[str, Any]:
    from lib.corpus import CorpusNotBuiltError, load_manifest

    try:
        return load_manifest(language, corpus_tag)
    except CorpusNotBuiltError as exc:
        tag_option = "" if corpus_tag == "default" else f" -p corpus_tag={corpus_tag}"
        raise InstructionDataError(
            f"the instruction set needs the {language!r} corpus {corpus_tag!r} (its splits decide which "
            f"examples are safe to train on); build it first: python -m lib prepare --language "
            f"{language}{tag_option}") from exc


# ---------------------------------------------------------------- the steps


def deduplicate(examples: Sequence[Example]) -> tuple[list[Example], int]:
    """Drop repeats of a normalised (prompt, completion) and of a normalised prompt, keeping
    the first; returns (kept, dropped)."""
    seen_pairs: set[tuple[str, str]] = set()
    seen_prompts: set[str] = set()
    kept = []
    for example in examples:
        prompt, completion = normalise(prompt_text(example)), normalise(completion_text(example))
        if (prompt, completion) in seen_pairs or prompt in seen_prompts:
            continue
        seen_pairs.add((prompt, completion))
        seen_prompts.add(prompt)
        kept.append(example)
    return kept, len(examples) - len(kept)


def instruction_split(example: Example, *, seed: int, validation_fraction: float, test_fraction: float) -> str:
    """The split of ``example``: a hash of (seed, group or id), salted apart from the corpus's."""
    u = stable_hash("instructions", seed, example["group"] or example["id"]) / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + validation_fraction:
        return "validation"
    return "train"


def build_instructions(
    language: str,
    *,
    tag: str = "default",
    corpus_tag: str = "default",
    sources: Sequence[str] | str = ("packaged",),
    seed: int = 1234,
    max_per_source: int = 0,
    validation_fraction: float = 0.05,
    test_fraction: float = 0.05,
    force: bool = False,
):
    """Build (or reuse) the instruction set for ``language`` and return it as a ``DatasetDict``.

    ``sources``: ``"packaged"`` (every builder of the language), builder names
    (``BUILDERS``), ``hf:OWNER/NAME[:CONFIG]`` or ``local:PATH``. The corpus
    ``corpus_tag`` must be built: its splits and offline tasks decide what is
    safe to train on. ``max_per_source > 0`` keeps that many examples per source.
    An existing build with the same parameters over the same corpus build is
    returned as is unless ``force`` (hub sets may change upstream: use ``force``).
    """
    started = time.time()
    check_language(language)
    _check_tag(tag, "tag")
    _check_tag(corpus_tag, "corpus_tag")
    _validate(seed, max_per_source, validation_fraction, test_fraction)
    expanded = resolve_sources(sources, language)
    corpus_manifest = _corpus_manifest(language, corpus_tag)
    parameters = {"sources": [sources] if isinstance(sources, str) else list(sources),
                  "expanded_sources": expanded, "corpus_tag": corpus_tag, "seed": seed,
                  "max_per_source": max_per_source, "validation_fraction": validation_fraction,
                  "test_fraction": test_fraction}
    corpus_id = hashlib.sha256(json.dumps(corpus_manifest, sort_keys=True).encode()).hexdigest()[:16]
    inputs = {"corpus": corpus_id, **{spec: _local_stamp(spec) for spec in expanded if spec.startswith("local:")}}
    final = instructions_path(language, tag)
    if not force and _same_build(final, parameters, inputs):
        return load_instructions(language, tag)

    from lib.instructions.leaks import leak_filter
    from lib.tasks.offline import split_function

    corpus_split = split_function(language, corpus_tag)
    leaks = leak_filter(language, corpus_tag)
    counts: dict[str, dict[str, Any]] = {}
    kept_by_source: dict[str, list[Example]] = {}
    for spec in expanded:
        if spec in BUILDERS:
            examples = BUILDERS[spec].build(language, corpus_tag, seed)
        else:
            examples = load_instruction_set(spec)
        if not examples:
            warnings.warn(f"source {spec!r} gave no {language!r} examples from corpus {corpus_tag!r} "
                          "(is its package among the corpus sources?)", stacklevel=2)
        count = counts[spec] = {"examples": len(examples)}
        if spec in BUILDERS:  # hub examples have no group: only the text filter applies to them
            safe = [e for e in examples if corpus_split(e["group"]) == "train"]
            count["not_train"] = len(examples) - len(safe)
            examples = safe
        else:
            count["not_train"] = 0
        clean = [e for e in examples if not leaks.leaks(e)]
        count["leaks"] = len(examples) - len(clean)
        kept_by_source[spec] = sorted(clean, key=lambda e: e["id"])

    # one pass over all sources in order: a repeat across sources counts against the later one
    seen = deduplicate([e for spec in expanded for e in kept_by_source[spec]])[0]
    seen_ids = {id(e) for e in seen}
    rows: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for spec in expanded:
        unique = [e for e in kept_by_source[spec] if id(e) in seen_ids]
        counts[spec]["duplicates"] = len(kept_by_source[spec]) - len(unique)
        random.Random(f"{seed}:{spec}").shuffle(unique)
        capped = unique[:max_per_source] if max_per_source else unique
        counts[spec]["capped"] = len(unique) - len(capped)
        per_split = {name: 0 for name in SPLITS}
        for example in capped:
            name = instruction_split(example, seed=seed, validation_fraction=validation_fraction,
                            test_fraction=test_fraction)
            rows[name].append(example)
            per_split[name] += 1
        counts[spec]["kept"] = len(capped)
        counts[spec]["splits"] = per_split
    total = sum(len(v) for v in rows.values())
    if total == 0:
        raise InstructionDataError(
            f"no {language!r} instruction examples left from {expanded} "
            f"(per source: {json.dumps({s: c['examples'] for s, c in counts.items()})}); "
            "check that the corpus holds the sources' packages, or add an hf:/local: set")
    if not rows["train"]:
        raise InstructionDataError(
            f"the train split of the {language!r} instruction set is empty ({total} examples, all held out); "
            "add examples or lower validation_fraction/test_fraction")
    for name in SPLITS:  # interleave the sources
        random.Random(f"{seed}:{name}").shuffle(rows[name])

    manifest = {
        "language": language,
        "tag": tag,
        "parameters": parameters,
        "corpus": {"tag": corpus_tag, "id": corpus_id, "parameters": corpus_manifest.get("parameters", {})},
        "inputs": inputs,  # what a rebuild with the same parameters compares: corpus build, local files
        "splits": {name: len(rows[name]) for name in SPLITS},
        "sources": counts,
        "dropped": {step: sum(c.get(step, 0) for c in counts.values())
                    for step in ("not_train", "leaks", "duplicates", "capped")},
        "leak_filter": {"tasks": leaks.tasks, "skipped_tasks": leaks.skipped, "texts": len(leaks.needles)},
        "build_seconds": None,  # filled in just before the rename
    }
    _write(final, rows, manifest, started)
    return load_instructions(language, tag)


def _local_stamp(spec: str) -> list[int]:
    """(bytes, newest mtime) of a local source: a changed file means a rebuild."""
    path = Path(spec.partition(":")[2]).expanduser()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stats = [f.stat() for f in files]
    return [sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)]


def _same_build(final: Path, parameters: dict[str, Any], inputs: dict[str, Any]) -> bool:
    try:
        built = json.loads((final / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return built.get("parameters") == json.loads(json.dumps(parameters)) and built.get("inputs") == inputs


# ---------------------------------------------------------------- writing


def _features():
    import datasets

    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    return datasets.Features({"id": datasets.Value("string"), "source": datasets.Value("string"),
                              "group": datasets.Value("string"), "prompt": datasets.List(message),
                              "completion": datasets.List(message)})


def _write(final: Path, rows: dict[str, list[Example]], manifest: dict[str, Any], started: float) -> None:
    import datasets

    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    tmp = staging_dir(final)
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        features = _features()
        splits = {name: datasets.Dataset.from_dict({c: [r[c] for r in rows[name]] for c in COLUMNS},
                                                   features=features) for name in SPLITS}
        # one shard per split: an empty split saved with zero shards cannot be loaded
        datasets.DatasetDict(splits).save_to_disk(str(tmp / "dataset"), num_shards=dict.fromkeys(SPLITS, 1))
        manifest["build_seconds"] = round(time.time() - started, 1)
        # the manifest marks a finished build: written last, then one rename
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if was_enabled:
            datasets.enable_progress_bars()




