"""Write an adapted model as a standalone Hugging Face checkpoint: weights, tokenizer, provenance.

The directory is written next to its destination and renamed into place when complete, so an
interrupted save never looks like a finished checkpoint; any stage can then name it (or the run
directory holding it in ``model/``) as a model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lib.vocab.backend import VocabError

PROVENANCE = "provenance.json"


def save_checkpoint(model, tokenizer, out_dir: str | Path, provenance: dict[str, Any] | None = None) -> Path:
    """Save ``model`` and ``tokenizer`` to ``out_dir`` (replaced if it exists) with ``provenance.json``."""
    rows = model.get_input_embeddings().weight.shape[0]
    if rows != len(tokenizer):
        raise VocabError(f"model has {rows} embedding rows but the tokenizer {len(tokenizer)} tokens: "
                         "run adapt_model before saving")
    return _write(Path(out_dir), lambda tmp: (model.save_pretrained(tmp), tokenizer.save_pretrained(tmp)),
                  {"vocab_size": len(tokenizer), **(provenance or {})})


def save_tokenizer(tokenizer, out_dir: str | Path, provenance: dict[str, Any] | None = None) -> Path:
    """A tokenizer alone (tokenizer-only sources build tables, never models)."""
    return _write(Path(out_dir), tokenizer.save_pretrained, {"vocab_size": len(tokenizer), **(provenance or {})})


def load_provenance(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / PROVENANCE).read_text())


def vocabulary_provenance(spec: str) -> dict[str, Any]:
    """What 04_vocab_adapt recorded of a model's vocabulary change, or {} where none was made: in
    the run's own checkpoint, or in the run it was trained from (03 names the 04 run as its model)."""
    import yaml

    for _ in range(8):  # chains are short
        path = Path(spec)
        record = path / "model" / PROVENANCE
        if record.is_file():
            data = json.loads(record.read_text())
            if data.get("stage") == "04_vocab_adapt":
                return data
        params_file = path / "params.yaml"
        if not params_file.is_file():
            return {}
        spec = (yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}).get("model", "")
        if not spec:
            return {}
    return {}


def _write(dest: Path, save, provenance: dict[str, Any]) -> Path:
    dest = dest.expanduser().resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        save(out)
        (out / PROVENANCE).write_text(json.dumps(provenance, indent=2, sort_keys=True, default=str) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        out.rename(dest)
    return dest
