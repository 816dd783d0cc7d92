"""Dataclass <-> JSON, one way for the whole project (bundle manifest, run config, student configs).

`to_json(record)` is `dataclasses.asdict`; `from_json(cls, data)` builds `cls` from parsed JSON with
every field checked against the dataclass's own annotations (so a field's type is written once, in
the dataclass), nested dataclasses and lists of them built, unknown keys refused naming the key, and
every problem collected: `RecordError.problems` lists them all, each naming its field's full path.
Standard library only: the runtime reads manifests with it.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, asdict, fields, is_dataclass
from typing import Any, get_type_hints

from runtime.errors import EdgeKDError


class RecordError(EdgeKDError):
    def __init__(self, what: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{what}:\n  - " + "\n  - ".join(problems))


def to_json(record) -> dict[str, Any]:
    return asdict(record)


def from_json(cls, data: Any, what: str = "record"):
    """`cls` built from `data`; raises RecordError(what, problems) listing every problem."""
    problems: list[str] = []
    record = decode(cls, data, "", problems)
    if problems:
        raise RecordError(what, problems)
    return record


def decode(cls, data: Any, where: str, problems: list[str]):
    """`cls` from `data`, appending each problem (with its path, `where` as prefix) to `problems`; on
    problems the result is a best effort (defaults where values were wrong)."""
    if not isinstance(data, dict):
        problems.append(f"{where.rstrip('.') or 'the record'} must be an object, got {type(data).__name__}")
        return None
    hints = get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    for key in data:
        if key not in known:
            problems.append(f"unknown key {where}{key}; known: {', '.join(sorted(known))}")
    kwargs = {}
    for f in fields(cls):
        path = f"{where}{f.name}"
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                problems.append(f"{path} is missing")
            continue
        before = len(problems)
        value = _value(hints[f.name], data[f.name], path, problems)
        if len(problems) == before:
            kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except TypeError:  # a required field missing or of the wrong type: reported above
        return None


def _name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _value(hint, value: Any, path: str, problems: list[str]):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _value(options[0], value, path, problems)
        for option in options:  # the first type the value fits
            trial: list[str] = []
            out = _value(option, value, path, trial)
            if not trial:
                return out
        problems.append(f"{path} has the wrong type ({type(value).__name__}); expected {_name(hint)}")
        return None
    if is_dataclass(hint):
        return decode(hint, value, f"{path}.", problems)
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{path} has the wrong type ({type(value).__name__}); expected a list")
            return None
        item = args[0] if args else Any
        return [_value(item, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            problems.append(f"{path} has the wrong type ({type(value).__name__}); expected an object")
            return None
        item = args[1] if len(args) == 2 else Any
        return {k: _value(item, v, f"{path}.{k}", problems) for k, v in value.items()}
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint in (str, bool):
        if isinstance(value, hint):
            return value
    else:
        return value  # a type this module does not check
    problems.append(f"{path} has the wrong type ({type(value).__name__}); expected {_name(hint)}")
    return None
