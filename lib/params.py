"""Typed parameters: one generic loader for every stage.

Each stage (``lib/stages/<stage>.py``) defines a dataclass whose fields are
exactly the names in its notebook's ``parameters`` cell (a test keeps the two
in step). Values resolve as dataclass defaults < profile section < parameter
files < ``-p key=value`` overrides; unknown keys and wrong types are errors that
name the key, never silently ignored.

A parameters dataclass may define ``inapplicable() -> set[str]``: the fields
that its current configuration cannot honour (a training rate for a run that
trains nothing). Set explicitly to anything but the default, such a field is an
error that names it; set only by a profile (which sizes every route of a stage
alike), it goes back to its default, so ``params.yaml`` records what ran.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from lib.languages import LANGUAGES

DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp32")
SCHEDULERS = ("cosine", "linear", "constant_with_warmup")


class ParamsError(ValueError):
    """Parameters that cannot run; the message names the offending key."""


class _Loader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, except that 1e-3 is a number (YAML 1.2 and Python agree;
    PyYAML alone reads it as the string '1e-3', and a learning rate would be refused)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML; a syntax error names ``where`` (a file, or the -p override) and the line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParamsError(f"{where} is not valid YAML{at}: {problem}") from None


def resolve(cls: type, section: str, *, profile_values: dict[str, Any] | None = None,
            files: list[str | Path] = (), overrides: dict[str, Any] | None = None):
    """``cls`` from defaults < ``profile_values`` < parameter files (in order) < ``overrides``."""
    merged: dict[str, Any] = dict(profile_values or {})
    explicit: set[str] = set()
    for path in files:
        values = read_yaml(Path(path))
        merged.update(values)
        explicit |= set(values)
    merged.update(overrides or {})
    explicit |= set(overrides or {})
    return build(cls, merged, explicit=explicit)


def build(cls: type, values: dict[str, Any], *, explicit: set[str] | None = None):
    """Construct ``cls`` from ``values``, rejecting unknown keys, wrong types and parameters
    its configuration cannot honour. ``explicit``: the keys the user set (None: all of them)."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ParamsError(
            f"unknown parameter(s) {', '.join(unknown)} for {cls.__name__}; "
            f"known: {', '.join(names)}"
        )
    checked = {key: _coerce(key, value, hints[key]) for key, value in values.items()}
    params = cls(**checked)
    _drop_inapplicable(params, explicit)
    params.validate()
    return params


def _drop_inapplicable(params, explicit: set[str] | None) -> None:
    inapplicable = getattr(params, "inapplicable", None)
    if inapplicable is None:
        return
    defaults = as_dict(type(params)())
    changed = sorted(k for k in inapplicable() if getattr(params, k) != defaults[k])
    refused = [k for k in changed if explicit is None or k in explicit]
    if refused:
        why = params.why_inapplicable() if hasattr(params, "why_inapplicable") else "this configuration"
        raise ParamsError(f"parameter(s) {', '.join(refused)} cannot change what runs for {why}; "
                          "remove them (or pick a configuration that uses them)")
    for key in changed:  # set by a profile for the stage as a whole: not this run's business
        setattr(params, key, defaults[key])


def from_namespace(cls: type, stage: str, namespace: dict[str, Any]):
    """Validate a notebook's parameters cell: pick the stage's fields out of ``globals()``."""
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in namespace]
    if missing:
        raise ParamsError(f"the parameters cell of {stage} lacks {', '.join(missing)}")
    return build(cls, {n: namespace[n] for n in names})


def as_dict(params) -> dict[str, Any]:
    return dataclasses.asdict(params)


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def parse_override(text: str) -> tuple[str, Any]:
    """'key=value' with the value read as YAML, so 3 is an int and [a, b] a list."""
    if "=" not in text:
        raise ParamsError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ParamsError(f"override {text!r} names no parameter (key=value)")
    return key.strip(), load_yaml(raw, f"the value of -p {text}") if raw.strip() else ""


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ParamsError(f"parameter file {path} does not exist")
    data = load_yaml(path.read_text(encoding="utf-8"), f"parameter file {path}") or {}
    if not isinstance(data, dict):
        raise ParamsError(f"parameter file {path} must hold a mapping of key: value")
    return data


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (list, typing.List):  # noqa: UP006
        (item_type,) = typing.get_args(hint)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ParamsError(f"parameter {key!r} must be a list of {item_type.__name__}, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, item_type) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(key, value, option)
            except ParamsError:
                continue
        raise ParamsError(f"parameter {key!r} has the wrong type: {value!r}")
    if hint is type(None):
        if value is None:
            return None
        raise ParamsError(f"parameter {key!r} must be None")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise ParamsError(f"parameter {key!r} must be {hint.__name__}, got a boolean")
    if not isinstance(value, hint):
        raise ParamsError(
            f"parameter {key!r} must be {hint.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


# --- checks the stages' validate() methods share --------------------------------------


def check_language(language: str, allowed: tuple[str, ...] = LANGUAGES) -> None:
    if language not in allowed:
        raise ParamsError(f"unknown language {language!r}; known: {', '.join(allowed)}")


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ParamsError(f"{key} must be one of {', '.join(choices)}, got {value!r}")


def check_fraction(key: str, value: float) -> None:
    if not 0 < value < 1:
        raise ParamsError(f"{key} must be between 0 and 1, got {value}")


def check_positive(key: str, value: int | float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ParamsError(f"{key} must be {'non-negative' if allow_zero else 'positive'}, got {value}")


def check_shots(shots: list[int]) -> None:
    if not shots or any(k < 0 for k in shots):
        raise ParamsError(f"shots must be a non-empty list of numbers >= 0, got {shots}")
    if len(set(shots)) != len(shots):
        raise ParamsError(f"shots has duplicates: {shots}")


def check_labels(labels: list[str], models: list[str]) -> None:
    """``labels``: the names the models' rows carry in tables and figures, one per model in
    order (a run directory as a model is a path, not a name); empty = the models as given."""
    if not labels:
        return
    if len(labels) != len(models):
        raise ParamsError(f"labels must name each of the {len(models)} models (in order), got {len(labels)} "
                          f"labels: {labels}")
    blank = [i for i, label in enumerate(labels) if not label.strip() or label != label.strip()]
    if blank:
        raise ParamsError(f"labels must be non-empty names without surrounding spaces; label(s) "
                          f"{', '.join(repr(labels[i]) for i in blank)} are not")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ParamsError(f"labels must differ (the rows of two models would merge): {', '.join(repeated)} "
                          "repeated")


def display_names(models: list[str], labels: list[str]) -> list[str]:
    """The name each model's rows carry: its label, or the model as given when there are none."""
    return list(labels) if labels else list(models)
