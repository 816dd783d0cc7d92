"""`edgekd distill`'s options made from the config: every field that carries `flag(...)` metadata
(edgekd.config.flag) is one option, spelled as its metadata says, and a given option lands in its field."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any

from edgekd.config import _SECTIONS, DistillConfig


@dataclass(frozen=True)
class Flag:
    """One `edgekd distill` option made from a config field's metadata (see `flag`)."""

    name: str  # the option's spelling without dashes: "layers", "student-init"
    path: tuple[str, ...]  # where its value goes in the config: ("student", "layers")
    help: str
    type: type
    parse: str = ""
    invert: bool = False

    def value(self, text):
        """The config value of what the flag was given."""
        if self.parse == "list":
            return [s.strip() for s in text.split(",") if s.strip()]
        if self.parse == "label_names":
            from edgekd.data import label_names_option

            return label_names_option(text)
        return (not text) if self.invert else text


def cli_flags(cls: type | None = None, prefix: tuple[str, ...] = ()) -> list[Flag]:
    """The fields of DistillConfig (and its sections) that carry a flag, in declaration order."""
    out: list[Flag] = []
    for f in fields(cls or DistillConfig):
        spec = f.metadata.get("flag")
        if spec:
            default = f.default if f.default is not MISSING else None
            kind = spec["type"] or type(default)
            out.append(Flag(spec["name"] or f.name.replace("_", "-"), prefix + (f.name,), spec["help"], kind,
                            spec["parse"], spec["invert"]))
        elif is_dataclass(f.type if isinstance(f.type, type) else _SECTIONS.get(f.name)):
            out.extend(cli_flags(_SECTIONS[f.name], prefix + (f.name,)))
    return out


def flag_overrides(given: dict[str, Any]) -> dict[str, Any]:
    """A nested override dict from distill's flags (python names -> values, None = not given)."""
    out: dict[str, Any] = {}
    for fl in cli_flags():
        value = given.get(fl.name.replace("-", "_"))
        if value is None or value == "":
            continue
        node = out
        for key in fl.path[:-1]:
            node = node.setdefault(key, {})
        node[fl.path[-1]] = fl.value(value)
    return out
