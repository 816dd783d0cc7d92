"""The bundle manifest: the one format exporters write and the runtime reads.

The reader owns the format. `exporters/` builds a `Manifest` and calls
`write_manifest`; the runtime calls `read_manifest` + `verify_bundle` before it
touches any graph. Bump `SCHEMA_VERSION` on any change an older reader could
misread; a reader refuses newer schemas with a message that says what to upgrade.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from runtime.errors import BundleError
from runtime.exits import ExitRule
from runtime.files import atomic_write_text
from runtime.records import decode
from runtime.task import Task, nest_flat_fields

# 4: the task record nested (`task`: runtime/task.py), the graph list named `parts` (it was `stages`: a "stage" is
# a step of `edgekd distill`, a "part" one graph of a bundle); 3: text pairs (token_type_ids), problem types, model
# card; 2: model.onnx (kind "compiled") in every bundle; 1-3 still read
SCHEMA_VERSION = 4
MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
EMBED_FILE = "embed.onnx"
GRAPH_FILE = "model.onnx"  # the compiled graph (schema 2): what every ONNX Runtime binding runs
# A BiLSTM / TextCNN student's one graph ("full" part) is exported to the same file, then compiled in place
# (exit outputs added); schema-1 bundles kept it there uncompiled.
FULL_FILE = GRAPH_FILE

# The parts of a bundle: one ONNX graph each. Their kinds and signatures are the one contract between exporters,
# which write them, and runtimes, which read them.
#   embed:    input_ids (B,T) int64 -> hidden (B,T,H)
#   layer:    hidden (B,T,H), mask (B,T) int64, rows (R,) int64 -> hidden_out (R,T,H), logits (R,C)
#             (rows picks the surviving rows of the incoming batch before the layer runs)
#   full:     input_ids (B,T) int64, mask (B,T) int64 -> logits (B,C)   (schema 1 students without exits)
#   compiled: input_ids (B,T) int64, attention_mask (B,T) int64, speed () float32
#             -> logits (B,C) float32, exit_layer (B,) int64 1-based, uncertainty (B,) float32
#             (the exit rule inside the graph; what JS and any other ONNX Runtime binding runs)
PART_KINDS = ("embed", "layer", "full", "compiled")
PART_INPUTS = {
    "embed": ("input_ids",),
    "layer": ("hidden", "mask", "rows"),
    "full": ("input_ids", "mask"),
    "compiled": ("input_ids", "attention_mask", "speed"),
}
PART_OUTPUTS = {
    "embed": ("hidden",),
    "layer": ("hidden_out", "logits"),
    "full": ("logits",),
    "compiled": ("logits", "exit_layer", "uncertainty"),
}
GRAPH_INPUTS = PART_INPUTS["compiled"]
GRAPH_OUTPUTS = PART_OUTPUTS["compiled"]
# A bundle made from text pairs (manifest.text_pair, schema 3) takes the tokenizer's segment ids too: the graphs
# that read token ids (embed, full, compiled) have this input besides the ones above.
PAIR_INPUT = "token_type_ids"  # (B,T) int64: 0 for the first text and its specials, 1 for the second (BERT)
TOKEN_PARTS = ("embed", "full", "compiled")


def part_inputs(kind: str, text_pair: bool = False) -> tuple[str, ...]:
    """The inputs a part of kind `kind` takes, in a bundle of single texts or of pairs."""
    base = PART_INPUTS.get(kind, ())
    return base + (PAIR_INPUT,) if text_pair and kind in TOKEN_PARTS else base


ENGINES = ("auto", "staged", "graph")


def layer_file(index: int) -> str:
    """File name of the 1-based layer part `index`."""
    return f"layer_{index:02d}.onnx"


@dataclass
class Part:
    index: int  # 0 for embed, 1..L for layers
    name: str
    file: str
    sha256: str
    kind: str  # one of PART_KINDS
    # the operators it is built from (schema 4): portable (standard ONNX only: any runtime) | fused (onnxruntime's
    # fused Attention / SkipLayerNormalization / BiasGelu kernels, faster where measured so); None: not recorded
    form: str | None = None


@dataclass
class Vocabulary:
    original_size: int  # ids the tokenizer produces
    kept_size: int  # rows in the embedding table (== original_size when uncompressed)
    remap_in_graph: bool = True  # the id remap is a Gather inside embed.onnx
    remapped_token_share: float | None = None  # share of measured tokens that were remapped


@dataclass
class CalibrationPoint:
    speed: float
    accuracy: float | None  # single-label; None for the other problem types (their metrics are in `metrics`)
    average_layers: float
    latency_ms: float | None = None  # mean per text at batch 1 on the measuring machine
    f1: float | None = None  # binary tasks: F1 of the positive class (the second label), schema 3
    # multi-label: micro_f1, macro_f1; regression: pearson, spearman (schema 3)
    metrics: dict[str, float] | None = None

    def score(self, metric: str = "accuracy") -> float:
        """The value of `metric` (Calibration.metric: the problem type's main one) at this speed."""
        value = self.accuracy if metric == "accuracy" else (self.metrics or {}).get(metric)
        if value is None:
            raise BundleError(f"calibration point at speed {self.speed:g} has no {metric}")
        return value


@dataclass
class Calibration:
    data: str  # what it was measured on (file name, rows)
    machine: str  # where latency was measured
    points: list[CalibrationPoint] = field(default_factory=list)
    rule: str | None = None  # how default_speed was chosen, e.g. "max_drop=1.0"
    # batch-1 latency (ms per text, at the chosen speed) of each engine on the measuring machine,
    # and the faster one, which runtime.load(engine="auto") picks there
    engine_latency_ms: dict[str, float] | None = None
    engine: str | None = None
    # thread use measured per batch size on the measuring machine, which runtime.load follows unless given
    # threads: {"batch_1": {"ms": {"default": ., "one": .}, "chosen": "default" | "one"},
    #           "batch_32": {"texts_per_s": {"whole": ., "split": .}, "chosen": "whole" | "split"}, "cores": n}
    threads: dict[str, Any] | None = None
    metric: str = "accuracy"  # the main metric of the problem type: accuracy | micro_f1 | pearson (schema 3)
    # calibrate --confidence (schema 4): the promise the default speed comes with: budget (share of rows made
    # worse), confidence, rows, speed, losses, bound (upper confidence bound on the risk), loss, method
    guarantee: dict[str, Any] | None = None


@dataclass
class Manifest:
    task: Task  # what the model answers: problem type, labels, pair or not, exit rule, thresholds (schema 4)
    max_length: int
    hidden_size: int
    num_layers: int
    parts: list[Part]  # the graphs, in order (schemas 1-3 called the list `stages`)
    vocabulary: Vocabulary
    opset: int
    producer: dict[str, str] = field(default_factory=dict)
    student: str = "transformer"  # transformer | bilstm | textcnn
    precision: str = "fp32"  # fp32 | int8 | fp16
    default_speed: float = 0.0
    tokenizer: str = TOKENIZER_FILE
    tokenizer_sha256: str | None = None
    calibration: Calibration | None = None
    # fp32 vs this precision on measured texts: prediction and exit-layer agreement per speed
    precision_check: dict[str, Any] | None = None
    # model.onnx against the staged graphs at export: rows compared, agreement, max logit difference
    compiled_check: dict[str, Any] | None = None
    # how each layer graph was chosen (export --optimize): mode, per-part fused ops, timings, choice and why
    optimization: dict[str, Any] | None = None
    # how the int8 graphs were made (export --int8): the methods tried, their agreement with fp32 and timings
    quantization: dict[str, Any] | None = None
    # the model card (schema 3): README.md in the bundle, hashed like every file; `source` holds what it says of
    # the training (teacher, data, student shape, licence) so that calibrate can write it again
    card: str | None = None
    card_sha256: str | None = None
    source: dict[str, Any] | None = None
    # what the bundle holds (schema 3): all (layer graphs + model.onnx, what `edgekd export` writes) | web
    # (model.onnx only) | mobile (model.ort, the ORT format) | hf (schema 4: onnx/model.onnx with `speed` an
    # initializer holding default_speed, + the files transformers.js and Optimum read): `edgekd pack` writes these
    target: str = "all"
    # what onnxruntime's mobile usability checker says of model.onnx and the layer graphs for NNAPI and CoreML
    # (exporters/targets.py; `edgekd export` records it, `edgekd inspect --targets` shows it)
    mobile_providers: dict[str, Any] | None = None
    # other files the folder holds, path -> sha256 (schema 4): `pack --target hf` writes the files the Hugging Face
    # tools read (config.json, tokenizer_config.json, special_tokens_map.json), verified like every other file
    files: dict[str, str] | None = None
    # pack --target web --choose (schema 4): the graph candidates timed in Chromium (ms, bytes, agreement with
    # the full bundle), the one kept and why (edgekd/web_choice.py)
    web: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    # the task's fields, read through the manifest (schemas 1-3 kept them here)
    labels = property(lambda self: self.task.labels)
    label_values = property(lambda self: self.task.label_values)
    text_pair = property(lambda self: self.task.text_pair)
    problem = property(lambda self: self.task.problem)
    target_scale = property(lambda self: self.task.target_scale)
    thresholds = property(lambda self: self.task.thresholds)
    threshold_choice = property(lambda self: self.task.threshold_choice)
    exit_rule = property(lambda self: self.task.exit_rule)

    def rule(self) -> ExitRule:
        """The exit rule this bundle's outputs leave by."""
        return self.task.rule()

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON data, always in the current schema's shape."""
        return {**asdict(self), "schema_version": SCHEMA_VERSION}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Build and type-check a manifest (types from the dataclasses, runtime.records); one BundleError
        lists every problem."""
        if not isinstance(data, dict):
            raise BundleError("manifest is malformed: not a JSON object")
        problems: list[str] = []
        version = data.get("schema_version")
        if isinstance(version, int) and version < 4 and "task" not in data:
            data = nest_flat_fields(data)  # schemas 1-3: the task's fields at the top level
            if "stages" in data:
                data["parts"] = data.pop("stages")  # ... and the graph list named `stages`
        manifest = decode(cls, data, "", problems)
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown and all(p.startswith("unknown key") for p in problems):
            raise BundleError(f"manifest has unknown fields {unknown}; it was written by a newer edgekd")
        if problems:
            raise BundleError("manifest is malformed:\n  - " + "\n  - ".join(problems))
        manifest.check_types()
        return manifest

    def check_types(self) -> None:
        problems = [f"task.{p}" if not p.startswith("task") else p for p in self.task.problems()]
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 2:
            problems.append(f"max_length must be an integer >= 2, got {self.max_length!r}")
        if isinstance(self.default_speed, bool) or not isinstance(self.default_speed, (int, float)) or \
                not 0 <= self.default_speed <= 1:
            problems.append(f"default_speed must lie in [0, 1], got {self.default_speed!r}")
        for i, part in enumerate(self.parts):
            if not isinstance(part.file, str) or not isinstance(part.sha256, str) or not isinstance(part.name, str):
                problems.append(f"part {i}: file, name and sha256 must be strings")
            if part.index != i:
                problems.append(f"part {i} ({part.name}) has index {part.index}: the list of parts is out of order")
        for i, part in enumerate(self.layer_parts, start=1):
            if part.name != f"layer_{i}":
                problems.append(f"layer part {i} is named {part.name!r}; layers must be listed in order")
        if problems:
            raise BundleError("manifest is malformed:\n  - " + "\n  - ".join(problems))

    @property
    def layer_parts(self) -> list[Part]:
        return [s for s in self.parts if s.kind == "layer"]

    @property
    def staged(self) -> list[Part]:
        """The parts the staged engine runs (embed + layers, or a schema-1 'full' graph)."""
        return [s for s in self.parts if s.kind != "compiled"]

    @property
    def graph(self) -> Part | None:
        """The compiled graph (model.onnx with the exit rule inside), if the bundle has one."""
        return next((s for s in self.parts if s.kind == "compiled"), None)


MAX_MANIFEST_BYTES = 4 << 20  # a manifest is a few kB; anything near this is not one


def read_manifest(bundle: str | os.PathLike) -> Manifest:
    """Read and schema-check `bundle/manifest.json` (no graph is opened)."""
    path = Path(bundle) / MANIFEST_FILE
    if not Path(bundle).is_dir():
        raise BundleError(f"{bundle} is not a bundle folder (no such directory)")
    if path.is_symlink():
        raise BundleError(f"{path} is a symbolic link; a bundle's files must be plain files inside it")
    if not path.is_file():
        raise BundleError(f"{path} is missing; is {bundle} a bundle written by `edgekd export`?")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path} is {path.stat().st_size} bytes, more than a manifest can be "
                          f"({MAX_MANIFEST_BYTES}); refusing to parse it")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise BundleError(f"{path} is nested too deeply to be a manifest") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise BundleError(f"{path} has no schema_version; it is not an edgekd manifest")
    version = data["schema_version"]
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise BundleError(
            f"{path} has schema_version {version}, newer than this runtime reads "
            f"({SCHEMA_VERSION}); upgrade with `pip install --upgrade edgekd`"
        )
    return Manifest.from_dict(data)


def bundle_size(path: str | os.PathLike) -> int:
    """Bytes of every file in a bundle folder (and its onnx/ folder, in an hf folder)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def bundle_files(path: str | os.PathLike) -> list[str]:
    """Every entry of a bundle folder as a relative POSIX path (files, and folders' contents), hidden ones left
    out; a symbolic link is listed, never followed."""
    root = Path(path)
    out, todo = [], [root]
    while todo:
        for entry in sorted(todo.pop().iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir() and not entry.is_symlink():
                todo.append(entry)
            else:
                out.append(entry.relative_to(root).as_posix())
    return out


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_inside(bundle: str | os.PathLike, name: str) -> Path:
    """Path of `name` inside `bundle`; refuses names that escape the folder."""
    root = Path(bundle).resolve()
    path = (root / name).resolve()
    if path.parent != root and root not in path.parents:
        raise BundleError(f"manifest names {name!r}, which lies outside the bundle {root}; refusing to read it")
    return path


class BundleWarning(UserWarning):
    """Something about a bundle worth saying that does not stop it from loading (an edited model card)."""


def verify_bundle(bundle: str | os.PathLike, manifest: Manifest) -> None:
    """Check every file the manifest names: inside the folder, present, sha256 equal.

    All problems are collected and reported together.
    """
    problems: list[str] = []
    try:
        tokenizer = resolve_inside(bundle, manifest.tokenizer)
        if (Path(bundle) / manifest.tokenizer).is_symlink():
            problems.append(f"tokenizer file {manifest.tokenizer} is a symbolic link; refusing to follow it")
        elif not tokenizer.is_file():
            problems.append(f"tokenizer file {manifest.tokenizer} is missing")
        elif manifest.tokenizer_sha256 is None:
            if manifest.schema_version >= 2:
                problems.append(f"tokenizer file {manifest.tokenizer} has no sha256 in the manifest")
        elif sha256_file(tokenizer) != manifest.tokenizer_sha256:
            problems.append(f"tokenizer file {manifest.tokenizer} does not match its sha256 (corrupted or replaced)")
    except BundleError as exc:
        problems.append(str(exc))
    if not manifest.parts:
        problems.append("manifest lists no graphs (parts)")
    for part in manifest.parts:
        if part.kind not in PART_KINDS:
            problems.append(f"part {part.name}: unknown kind {part.kind!r} (known: {', '.join(PART_KINDS)})")
        try:
            path = resolve_inside(bundle, part.file)
        except BundleError as exc:
            problems.append(str(exc))
            continue
        if (Path(bundle) / part.file).is_symlink():
            problems.append(f"part {part.name}: {part.file} is a symbolic link; refusing to follow it")
        elif not path.is_file():
            problems.append(f"part {part.name}: file {part.file} is missing")
        elif sha256_file(path) != part.sha256:
            problems.append(f"part {part.name}: {part.file} does not match its sha256 (corrupted or replaced)")
    for name, digest in (manifest.files or {}).items():
        try:
            path = resolve_inside(bundle, name)
        except BundleError as exc:
            problems.append(str(exc))
            continue
        if (Path(bundle) / name).is_symlink():
            problems.append(f"{name} is a symbolic link; refusing to follow it")
        elif not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name} does not match its sha256 (corrupted or replaced)")
    if manifest.card is not None:
        try:
            card = resolve_inside(bundle, manifest.card)
            if not card.is_file():
                problems.append(f"model card {manifest.card} is missing")
            elif sha256_file(card) != manifest.card_sha256:  # documentation: said, not refused
                warnings.warn(f"{bundle}: the model card {manifest.card} was edited since export (its sha256 "
                              "differs; the graphs, tokenizer and manifest are verified as usual); to record the "
                              f"edit: edgekd card {bundle} --rehash", BundleWarning, stacklevel=3)
        except BundleError as exc:
            problems.append(str(exc))
    listed = {MANIFEST_FILE, manifest.tokenizer} | {s.file for s in manifest.parts} | set(manifest.files or {}) | \
        ({manifest.card} if manifest.card else set())
    extra = [name for name in bundle_files(bundle) if name not in listed]
    if extra:
        problems.append(f"files the manifest does not list: {', '.join(extra)} (a bundle holds only what its "
                        "manifest hashes; remove them)")
    if problems:
        raise BundleError(f"bundle {bundle} failed verification:\n  - " + "\n  - ".join(problems))


def write_manifest(bundle: str | os.PathLike, manifest: Manifest) -> Path:
    """Write `manifest.json` atomically (temp file + rename)."""
    path = Path(bundle) / MANIFEST_FILE
    return atomic_write_text(path, json.dumps(manifest.to_dict(), indent=2) + "\n")
