"""Dataclass <-> JSON one way (runtime.records): the manifest, the run config and the student configs
refuse unknown keys and wrong types the same way, naming the key."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from runtime.records import RecordError, from_json, to_json


@dataclass
class Inner:
    speed: float
    note: str | None = None


@dataclass
class Outer:
    name: str
    count: int = 1
    flags: list[str] = field(default_factory=list)
    points: list[Inner] = field(default_factory=list)
    extra: dict[str, float] | None = None


def test_round_trip_builds_nested_dataclasses():
    record = Outer("a", 3, ["x"], [Inner(0.5), Inner(1, "n")], {"k": 2.0})
    back = from_json(Outer, json.loads(json.dumps(to_json(record))))
    assert back == record and isinstance(back.points[1], Inner) and isinstance(back.points[1].speed, float)


def test_every_problem_is_listed_with_its_path():
    data = {"name": 3, "count": True, "flags": ["x", 2], "points": [{"speed": "fast"}, {"note": "n"}],
            "extra": {"k": "no"}, "colour": "red"}
    with pytest.raises(RecordError) as info:
        from_json(Outer, data, "test record")
    assert info.value.problems == [
        "unknown key colour; known: count, extra, flags, name, points",
        "name has the wrong type (int); expected str",
        "count has the wrong type (bool); expected int",
        "flags[1] has the wrong type (int); expected str",
        "points[0].speed has the wrong type (str); expected float",
        "points[1].speed is missing",
        "extra.k has the wrong type (str); expected float",
    ]
    assert str(info.value).startswith("test record:\n  - unknown key colour")


def test_run_config_names_the_unknown_key():
    from edgekd.config import ConfigError, DistillConfig

    with pytest.raises(ConfigError, match="unknown key finetune.temprature; known: .*temperature"):
        DistillConfig.from_dict({"finetune": {"temprature": 2.0}})
    with pytest.raises(ConfigError, match="seed has the wrong type \\(str\\); expected int"):
        DistillConfig.from_dict({"seed": "42"})
