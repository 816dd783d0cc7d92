"""Write a bundle folder: layer graphs + tokenizer + manifest, atomically.

The bundle is built in a temporary folder beside the target and renamed into
place only after every graph has passed validation, so a failed export leaves
no partial bundle and never touches an existing one.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from exporters.compile import compile_early_exit, compile_single
from exporters.optimize import choose_part_graphs
from exporters.quantize import FUSED
from exporters.parts import DEFAULT_OPSET, PartSpec, example_inputs, export_specs, student_part_specs
from exporters.validate import Check, ExportValidationError, graph_cases, validate_compiled, validate_student_parts
from runtime import files
from runtime.errors import EdgeKDError
from runtime.exits import SPEED_GRID
from runtime.manifest import (
    GRAPH_FILE,
    GRAPH_INPUTS,
    PART_INPUTS,
    TOKENIZER_FILE,
    Manifest,
    Part,
    Vocabulary,
    read_manifest,
    sha256_file,
    write_manifest,
)
from runtime.task import Task
from runtime.tokenize import TextEncoder


class ExportError(EdgeKDError):
    """The export cannot start or finish (bad target, bad inputs)."""


@dataclass
class ExportResult:
    path: Path
    manifest: Manifest
    checks: list[Check]


def producer_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "unknown"

    return {"edgekd": v("edgekd"), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": ort.__version__, "python": platform.python_version()}


@contextmanager
def atomic_folder(target: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temp folder beside `target`; on success it replaces `target`."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise ExportError(f"{target} already exists; pass --overwrite to replace it")
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target} exists and is not a folder")
    with files.atomic_folder(target) as tmp:
        yield tmp


def _part_entries(specs: dict[str, PartSpec], folder: Path) -> list[Part]:
    parts = []
    for index, (file, spec) in enumerate(specs.items()):
        parts.append(Part(index=index, name=spec.name, file=file, sha256=sha256_file(folder / file), kind=spec.kind))
    return parts


def export_student(
    model: nn.Module,
    tokenizer_file: str | os.PathLike,
    labels: list[str],
    out: str | os.PathLike,
    max_length: int,
    *,
    opset: int = DEFAULT_OPSET,
    atol: float = 1e-4,
    overwrite: bool = False,
    default_speed: float = 0.0,
    rewrite: Callable[[Path, Manifest], Manifest] | None = None,
    measure: Callable[[Path], None] | None = None,
    optimize: str = "none",
    text_pair: bool = False,
    task: Task | None = None,
    graph_form: str = "auto",
) -> ExportResult:
    """Export an early-exit student to a bundle folder `out` (made from text pairs with `text_pair`: the
    embed graph and model.onnx take token_type_ids).

    `model` follows the staged contract of `exporters.parts.student_part_specs`
    and has a `.config` with hidden_size, num_layers, vocab_size and
    original_vocab_size. Every part is validated against torch (atol) before
    the bundle is moved into place. `rewrite(folder, manifest)` may rewrite
    graphs (quantization) before the manifest is written; `measure(folder)` runs on the complete bundle
    (agreement, calibration) before it is renamed into place. `optimize` (none | fused |
    auto) picks each layer graph's form by measurement (exporters.optimize). `task`: the problem type and
    what its answers need (default single-label).
    """
    cfg = model.config
    _check_inputs(cfg, labels, tokenizer_file)
    if max_length > cfg.max_position:
        raise ExportError(f"max_length {max_length} exceeds the student's position table ({cfg.max_position})")
    model = model.eval().cpu()
    input_vocab = cfg.original_vocab_size or cfg.vocab_size
    specs = student_part_specs(model, text_pair)
    return _write_bundle(specs, cfg, input_vocab, tokenizer_file, labels, out, max_length, opset, atol, overwrite,
                         default_speed, rewrite, student="transformer", measure=measure, optimize=optimize,
                         num_heads=cfg.num_heads, text_pair=text_pair, task=task, graph_form=graph_form)


def export_classifier(
    model: nn.Module,
    tokenizer_file: str | os.PathLike,
    labels: list[str],
    out: str | os.PathLike,
    max_length: int,
    *,
    opset: int = DEFAULT_OPSET,
    atol: float = 1e-4,
    overwrite: bool = False,
    rewrite: Callable[[Path, Manifest], Manifest] | None = None,
    measure: Callable[[Path], None] | None = None,
    task: Task | None = None,
) -> ExportResult:
    """Export a classifier without exits (BiLSTM, TextCNN: `model(input_ids, mask)`) as a
    one-part bundle (`model.onnx`, kind `full`) that the same runtime runs."""
    from exporters.parts import full_part_spec

    cfg = model.config
    _check_inputs(cfg, labels, tokenizer_file)
    model = model.eval().cpu()
    input_vocab = cfg.original_vocab_size or cfg.vocab_size
    specs = full_part_spec(model, getattr(cfg, "kind", "full"))
    return _write_bundle(specs, cfg, input_vocab, tokenizer_file, labels, out, max_length, opset, atol, overwrite,
                         0.0, rewrite, student=getattr(cfg, "kind", "full"), measure=measure, task=task)


def _check_inputs(cfg, labels: list[str], tokenizer_file) -> None:
    if len(labels) != cfg.num_labels:
        raise ExportError(f"{len(labels)} labels given but the student has {cfg.num_labels} outputs")
    if not Path(tokenizer_file).is_file():
        raise ExportError(f"tokenizer file {tokenizer_file} is missing")


def _write_bundle(specs, cfg, input_vocab, tokenizer_file, labels, out, max_length, opset, atol, overwrite,
                  default_speed, rewrite, student: str, measure=None, optimize: str = "none",
                  num_heads: int = 0, text_pair: bool = False, task: Task | None = None,
                  graph_form: str = "auto") -> ExportResult:
    task = replace(task or Task(), labels=list(labels), text_pair=text_pair).with_rule()
    with atomic_folder(Path(out), overwrite) as folder:
        inputs = {f: example_inputs(s, cfg.hidden_size, input_vocab) for f, s in specs.items()}
        export_specs(specs, folder, inputs, opset)
        checks = validate_student_parts(specs, folder, input_vocab, max_length, atol)
        shutil.copyfile(tokenizer_file, folder / TOKENIZER_FILE)
        manifest = Manifest(
            task=task, max_length=max_length, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
            parts=_part_entries(specs, folder),
            vocabulary=Vocabulary(original_size=input_vocab, kept_size=cfg.vocab_size),
            opset=opset, producer=producer_versions(), default_speed=default_speed, student=student,
        )
        if rewrite is not None:
            manifest = rewrite(folder, manifest)
        if graph_form not in GRAPH_FORMS:
            raise ExportError(f"graph_form {graph_form!r} is not one of {', '.join(GRAPH_FORMS)}")
        # model.onnx is composed once: portable, from the plain layer graphs before any is fused; auto, from the
        # forms the measurement below keeps (fewer kernels per layer where fused ones won)
        if graph_form == "portable":
            manifest.compiled_check = add_compiled_graph(folder, manifest, atol)
        if manifest.precision == "fp32":
            manifest.optimization = choose_part_graphs(folder, manifest, optimize, num_heads, atol)
        elif optimize != "none":
            manifest.optimization = {"mode": optimize, "parts": {}, "skipped": f"{manifest.precision} graphs are "
                                     "kept as quantized (fuse before quantizing: see the teacher-optimum baseline)"}
        record_forms(manifest)
        if graph_form == "auto":
            manifest.compiled_check = add_compiled_graph(folder, manifest, atol)
            manifest.graph.form = "fused" if any(p.form == "fused" for p in manifest.layer_parts) else "portable"
        stamp_parts(folder, manifest, getattr(cfg, "max_position", 0))
        for part in manifest.parts:
            part.sha256 = sha256_file(folder / part.file)
        manifest.tokenizer_sha256 = sha256_file(folder / manifest.tokenizer)
        write_manifest(folder, manifest)
        read_manifest(folder)  # the reader accepts what we wrote
        if measure is not None:  # measurements on the complete bundle, before it is renamed into place
            measure(folder)
            manifest = read_manifest(folder)
    return ExportResult(Path(out), manifest, checks)


GRAPH_FORMS = ("auto", "portable")  # export --graph-form: model.onnx from the layer forms kept, or standard ops only


def record_forms(manifest: Manifest) -> None:
    """Each part's form: fused where the optimization kept onnxruntime's fused graph, else portable (the
    compiled graph's is set where it is composed)."""
    chosen = (manifest.optimization or {}).get("parts", {})
    fused_int8 = (manifest.quantization or {}).get("chosen") == FUSED  # layers fused, then made int8
    for part in manifest.parts:
        fused = chosen.get(part.name, {}).get("chosen") == "fused" or (fused_int8 and part.kind == "layer")
        part.form = "fused" if fused else "portable"


def stamp_parts(folder: Path, manifest: Manifest, max_position: int = 0) -> None:
    """Write each graph's place in the bundle into its metadata (edgekd.part, edgekd.kind, and the
    embed graph's position-table size), so a runtime can tell swapped or foreign files apart."""
    for part in manifest.parts:
        path = folder / part.file
        model = onnx.load(str(path))
        meta = {"edgekd.part": part.name, "edgekd.kind": part.kind}
        if part.kind in ("embed", "compiled") and max_position:
            meta["edgekd.max_position"] = str(max_position)
        kept = [p for p in model.metadata_props if p.key not in meta]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
        for key, value in meta.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(path))


def add_compiled_graph(folder: Path, manifest: Manifest, atol: float = 1e-4) -> dict:
    """Compile the bundle's (already checked, maybe quantized) layer graphs into `model.onnx`,
    add it to `manifest.parts`, and check it against the staged graphs. Returns the check summary.

    A one-graph student (BiLSTM, TextCNN) gets the same contract around its graph, which it replaces.
    """
    import runtime

    exact = manifest.precision == "fp32"
    vocab = manifest.vocabulary.original_size
    if manifest.student != "transformer":
        full = manifest.parts[0]
        cases = graph_cases(vocab, manifest.max_length)
        reference = ort.InferenceSession(str(folder / full.file), providers=["CPUExecutionProvider"])
        expected = {case: reference.run(None, dict(zip(PART_INPUTS["full"], (ids, mask))))[0]
                    for case, (ids, mask) in cases.items()}
        del reference
        onnx.save(compile_single(onnx.load(str(folder / full.file)), len(manifest.labels), manifest.rule()),
                  str(folder / GRAPH_FILE))
        manifest.parts = [Part(index=0, name="model", file=GRAPH_FILE, sha256="", kind="compiled")]
        session = ort.InferenceSession(str(folder / GRAPH_FILE), providers=["CPUExecutionProvider"])
        failures, worst = [], 0.0
        for case, (ids, mask) in cases.items():
            feeds = dict(zip(GRAPH_INPUTS, (ids, mask, np.array(0.0, np.float32))))
            logits, layers, _ = session.run(None, feeds)
            diff = float(np.abs(logits - expected[case]).max())
            worst = max(worst, diff)
            if diff > atol or (layers != 1).any():
                failures.append(f"compiled graph [{case}]: max diff {diff:.3g} > atol {atol:g} or exit_layer != 1")
        if failures:
            raise ExportValidationError(failures)
        return {"reference": "one-graph student", "max_logit_diff": worst}
    embed, *layers = [onnx.load(str(folder / part.file)) for part in manifest.staged]
    rule = manifest.rule()
    specials = TextEncoder.from_file(folder / manifest.tokenizer, manifest.max_length).special_ids \
        if rule.per_token else None
    onnx.save(compile_early_exit(embed, layers, len(manifest.labels), rule=rule, special_ids=specials),
              str(folder / GRAPH_FILE))
    manifest.parts.append(Part(index=len(manifest.parts), name="model", file=GRAPH_FILE, sha256="",
                               kind="compiled"))
    model = runtime.EdgeModel(folder, manifest, "cpu", None, engine="staged")
    summary = validate_compiled(model, vocab, manifest.max_length, list(SPEED_GRID) + [1.0], exact=exact, atol=atol)
    return {"reference": "staged runtime", **summary}


def recompile_graph(folder: Path, manifest: Manifest, atol: float = 1e-4) -> None:
    """Compose `model.onnx` again from the bundle's staged parts under `manifest`'s rule (export changes the rule
    after measuring, e.g. a multi-label rule moved to the thresholds it chose), check it against the staged graphs
    as the first time, keep its metadata and hash it; the manifest is the caller's to write."""
    old = next(p for p in manifest.parts if p.kind == "compiled")
    meta = {m.key: m.value for m in onnx.load(str(folder / old.file), load_external_data=False).metadata_props}
    manifest.parts = [p for p in manifest.parts if p.kind != "compiled"]
    manifest.compiled_check = add_compiled_graph(folder, manifest, atol)
    compiled = next(p for p in manifest.parts if p.kind == "compiled")
    model = onnx.load(str(folder / compiled.file))
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(folder / compiled.file))
    compiled.form = old.form
    compiled.sha256 = sha256_file(folder / compiled.file)


def export_full_graph(model: nn.Module, path: str | os.PathLike, vocab_size: int, max_length: int, *,
                      opset: int = DEFAULT_OPSET, atol: float = 1e-4, name: str = "full",
                      text_pair: bool = False) -> list[Check]:
    """Export any classifier `model(input_ids, mask[, token_type_ids=])` as one graph (input_ids, mask
    [, token_type_ids] -> logits), validated against torch like the parts. Used for baselines and students
    without exits."""
    from exporters.parts import full_part_spec

    path = Path(path)
    specs = full_part_spec(model.eval().cpu(), name, text_pair)
    spec = next(iter(specs.values()))
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        tmp_path = Path(tmp)
        export_specs({path.name: spec}, tmp_path, {path.name: example_inputs(spec, 0, vocab_size)}, opset)
        checks = validate_student_parts({path.name: spec}, tmp_path, vocab_size, max_length, atol)
        os.replace(tmp_path / path.name, path)
    return checks
