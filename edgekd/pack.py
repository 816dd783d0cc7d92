"""`edgekd pack`: a slim bundle holding only what one target's runtime reads.

A full bundle (`--target all`, what `edgekd export` writes) holds the layer graphs (the staged engine,
calibration) and `model.onnx` (the exit rule compiled in), so its weights are in it twice. An app ships
what it runs:

- web: `model.onnx` + `tokenizer.json` + manifest (+ the model card): what the JS runtime reads in the
  browser or Node;
- mobile: `model.ort`, the compiled graph in ONNX Runtime's ORT format (converted with onnxruntime's own
  tool, optimized for ARM so it also runs here), + tokenizer + manifest (+ card): what ONNX Runtime Mobile
  loads on Android and iOS.

Each slim bundle has its own manifest (target, only its files, hashed) and is checked before it is moved
into place: `runtime.load` opens it and answers as the full bundle does on a few texts. `predict`,
`serve` and `inspect` take it; `calibrate` and the staged engine need the layer graphs and say so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

import runtime
from edgekd.card import write_card
from runtime.errors import EdgeKDError
from runtime.files import atomic_folder
from runtime.manifest import Part, bundle_size, read_manifest, sha256_file, verify_bundle, write_manifest

TARGETS = ("web", "mobile")
ORT_FILE = "model.ort"
CHECK_TEXTS = ["a short text", "another one, a little longer than the first", "ok"]


def _ort_format(src: Path, dst: Path) -> None:
    """`src` (ONNX) converted to the ORT format at `dst` by onnxruntime's converter (fixed optimizations for
    the CPU provider on ARM: no x86-only layouts, so the file runs on both)."""
    import contextlib
    import io
    import logging

    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copyfile(src, work / "model.onnx")
        quiet = logging.getLogger("ort_format_model.utils")
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the converter prints each step
                convert_onnx_models_to_ort(work / "model.onnx", output_dir=work / "out",
                                           optimization_styles=[OptimizationStyle.Fixed], target_platform="arm")
        finally:
            quiet.setLevel(level)
        converted = next((work / "out").glob("*.ort"), None)
        if converted is None:
            raise EdgeKDError(f"onnxruntime's converter wrote no .ort file for {src}")
        shutil.copyfile(converted, dst)


def pack(bundle: str | os.PathLike, out: str | os.PathLike, target: str, overwrite: bool = False) -> Path:
    """Write the slim bundle of `bundle` for `target` (web | mobile) to `out`; returns its path."""
    if target not in TARGETS:
        raise EdgeKDError(f"unknown target {target!r}; use one of {', '.join(TARGETS)} (a full bundle is what "
                          "`edgekd export` writes)")
    bundle, out = Path(bundle), Path(out)
    manifest = read_manifest(bundle)
    verify_bundle(bundle, manifest)
    if manifest.graph is None:
        raise EdgeKDError(f"{bundle} has no model.onnx (a schema-1 bundle): re-export it with `edgekd export`")
    if out.exists() and not overwrite:
        raise EdgeKDError(f"{out} already exists; pass --overwrite to replace it")
    if out.resolve() == bundle.resolve():
        raise EdgeKDError("--out must be another folder than the bundle")
    full = runtime.load(bundle, engine="graph")
    want = full.outputs(_texts(full), speed=manifest.default_speed)
    with atomic_folder(out) as tmp:
        shutil.copyfile(bundle / manifest.tokenizer, tmp / manifest.tokenizer)
        if target == "web":
            file = manifest.graph.file
            shutil.copyfile(bundle / file, tmp / file)
        else:
            if manifest.graph.form == "fused":
                raise EdgeKDError(f"{bundle}'s model.onnx is built from onnxruntime's fused kernels, which ONNX "
                                  "Runtime Mobile builds may lack: export it again with --graph-form portable for "
                                  "the mobile target")
            file = ORT_FILE
            _ort_format(bundle / manifest.graph.file, tmp / file)
        manifest.parts = [Part(index=0, name="model", file=file, sha256=sha256_file(tmp / file), kind="compiled",
                               form=manifest.graph.form)]
        manifest.target = target
        manifest.card = manifest.card_sha256 = None
        write_manifest(tmp, manifest)
        write_card(tmp, manifest)  # the card of the slim bundle: its files and how to run them
        slim = runtime.load(tmp)
        got = slim.outputs(_texts(slim), speed=manifest.default_speed)
        if not ((got[1] == want[1]).all() and np.abs(got[0] - want[0]).max() <= 1e-4):
            raise EdgeKDError(f"the {target} bundle does not answer as {bundle} does (max logit difference "
                              f"{float(np.abs(got[0] - want[0]).max()):.3g}); nothing written")
    return out


def _texts(model: runtime.EdgeModel) -> list:
    return [(t, t[::-1]) for t in CHECK_TEXTS] if model.manifest.text_pair else CHECK_TEXTS


def sizes(bundle: str | os.PathLike, work: str | os.PathLike) -> dict[str, int | None]:
    """Bytes of the full bundle and of its slim bundle for each target (packed into `work`); None for mobile
    where the ORT-format converter cannot run (it needs the onnx package)."""
    out: dict[str, int | None] = {"all": bundle_size(bundle)}
    for target in TARGETS:
        folder = Path(work) / f"{Path(bundle).name}-{target}"
        try:
            pack(bundle, folder, target, overwrite=True)
        except ImportError:
            out[target] = None
            continue
        out[target] = bundle_size(folder)
    return out
