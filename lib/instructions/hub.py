"""Translated Alpaca-style instruction sets from the hub or from local files.

LlamaTurk tuned on a Turkish translation of Alpaca; such sets exist for Polish
and Russian too. Two schemas are read:

- Alpaca: ``instruction``, ``input`` (optional, may be empty), ``output``; the
  prompt is the instruction, followed by the input after a blank line;
- chat: a ``messages`` (or ``conversations``) list of ``{role, content}``
  (ShareGPT's ``{from, value}`` too); the last assistant turn is the
  completion, every turn before it the prompt.

Source specs:

- ``hf:OWNER/NAME[:CONFIG]``: the ``train`` split through ``datasets.load_dataset``
  (needs the hub, or a local mirror through ``HF_ENDPOINT``/the datasets cache;
  these machines have neither, so the tests replace ``load_dataset``);
- ``local:PATH``: a ``.json`` (a list of records, or JSON lines), ``.jsonl`` or
  ``.parquet`` file, or a directory written by ``save_to_disk``.

Hub examples have no corpus group: they are split by their id and only go
through the text leak filter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lib.instructions.records import ROLES, Example, InstructionDataError, make_example

ALPACA_COLUMNS = ("instruction", "output")  # "input" is optional
CHAT_COLUMNS = ("messages", "conversations")
LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet")
_SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "user": "user",
                   "assistant": "assistant"}


def is_hub_spec(spec: str) -> bool:
    kind, _, arg = spec.partition(":")
    return kind in ("hf", "local") and bool(arg)


def check_spec(spec: str) -> None:
    """Cheap checks before any loading: the form of an ``hf:`` name, a local path that exists."""
    kind, _, arg = spec.partition(":")
    if kind == "hf":
        if not arg.partition(":")[0].strip():
            raise InstructionDataError(f"{spec!r}: use hf:OWNER/NAME[:CONFIG], e.g. hf:user/alpaca-tr")
    elif kind == "local":
        _local_path(spec, arg)
    else:
        raise InstructionDataError(f"{spec!r} is not a hub or local source (hf:OWNER/NAME[:CONFIG], local:PATH)")


def _local_path(spec: str, arg: str) -> Path:
    path = Path(arg).expanduser()
    if not path.exists():
        raise InstructionDataError(f"{spec!r}: {str(path)!r} does not exist")
    if path.is_file() and path.suffix not in LOCAL_SUFFIXES:
        raise InstructionDataError(
            f"{spec!r}: unsupported file type {path.suffix!r}; use {', '.join(LOCAL_SUFFIXES)} "
            "or a directory written by datasets' save_to_disk")
    if path.is_dir() and not (path / "dataset_info.json").is_file() and not (path / "dataset_dict.json").is_file():
        raise InstructionDataError(f"{spec!r}: {str(path)!r} is a directory but not one written by save_to_disk")
    return path


def load_instruction_set(spec: str) -> list[Example]:
    """Every usable row of an Alpaca-style or chat set, as examples (``source`` = ``spec``)."""
    check_spec(spec)
    columns, rows = _read(spec)
    schema = _schema(spec, columns)
    out: list[Example] = []
    n_rows = 0
    for index, row in enumerate(rows):
        n_rows += 1
        turns = _alpaca_turns(row) if schema == "alpaca" else _chat_turns(row.get(schema))
        if turns is None:
            continue  # empty instruction or answer, or a conversation that does not end with the assistant
        prompt, completion = turns
        ident = row.get("id")
        ident = str(ident) if ident not in (None, "") else str(index)
        out.append(make_example(f"{spec}#{ident}", spec, "", prompt, completion))
    if not out:
        what = "instruction and output" if schema == "alpaca" else "a user turn and a final assistant turn"
        raise InstructionDataError(f"{spec!r}: no usable examples ({n_rows} rows, none with {what})")
    return out


# ---------------------------------------------------------------- reading


def _read(spec: str) -> tuple[list[str], Iterable[dict[str, Any]]]:
    kind, _, arg = spec.partition(":")
    if kind == "hf":
        import datasets

        name, _, config = arg.partition(":")
        data = datasets.load_dataset(name, config or None, split="train")
        return list(data.column_names), data
    path = _local_path(spec, arg)
    if path.is_dir():
        import datasets

        data = datasets.load_from_disk(str(path))
        if isinstance(data, datasets.DatasetDict):
            if "train" not in data:
                raise InstructionDataError(f"{spec!r}: the saved DatasetDict has no 'train' split ({list(data)})")
            data = data["train"]
        return list(data.column_names), data
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return list(table.column_names), table.to_pylist()
    records = list(_json_records(spec, path))
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    return list(columns), records


def _json_records(spec: str, path: Path) -> Iterator[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    whole: Any = None
    if path.suffix == ".json":
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            pass  # perhaps one record per line
    if isinstance(whole, dict) and len(text.strip().splitlines()) == 1:
        whole = [whole]  # JSON lines with one record
    if whole is not None and not isinstance(whole, list):
        raise InstructionDataError(f"{spec!r}: expected a list of records (as alpaca_data.json) or JSON lines")
    if whole is not None:
        records: Iterable[Any] = whole
    else:  # .jsonl, or a .json file holding one record per line
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InstructionDataError(f"{path}:{lineno}: not valid JSON ({exc})") from exc
    for record in records:
        if not isinstance(record, dict):
            raise InstructionDataError(f"{spec!r}: every record must be a JSON object, got {record!r:.80}")
        yield record


# ---------------------------------------------------------------- schemas


def _schema(spec: str, columns: list[str]) -> str:
    """``"alpaca"`` or the name of the chat column; an error naming what is missing."""
    for name in CHAT_COLUMNS:
        if name in columns:
            return name
    missing = [c for c in ALPACA_COLUMNS if c not in columns]
    if not missing:
        return "alpaca"
    if not columns:
        raise InstructionDataError(f"{spec!r}: the set is empty (no rows)")
    raise InstructionDataError(
        f"{spec!r}: not an instruction set: missing column(s) {', '.join(repr(c) for c in missing)} "
        f"(Alpaca style: instruction, input (optional), output; or a chat column "
        f"{' / '.join(repr(c) for c in CHAT_COLUMNS)} of {{role, content}} turns); "
        f"columns found: {', '.join(columns)}")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _alpaca_turns(row: dict[str, Any]) -> tuple[str, str] | None:
    instruction, extra, output = _text(row.get("instruction")), _text(row.get("input")), _text(row.get("output"))
    if not instruction or not output:
        return None
    return (f"{instruction}\n\n{extra}" if extra else instruction), output


def _chat_turns(conversation: Any) -> tuple[list[dict[str, str]], str] | None:
    if not isinstance(conversation, list):
        return None
    turns = []
    for message in conversation:
        if not isinstance(message, dict):
            return None
        role = _SHAREGPT_ROLES.get(str(message.get("role", message.get("from", ""))).lower())
        content = _text(message.get("content", message.get("value")))
        if role not in ROLES or not content:
            return None
        turns.append({"role": role, "content": content})
    if len(turns) < 2 or turns[-1]["role"] != "assistant" or not any(t["role"] == "user" for t in turns[:-1]):
        return None
    return turns[:-1], turns[-1]["content"]
