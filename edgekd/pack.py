"""`edgekd pack`: a slim bundle holding only what one target's runtime reads.

A full bundle (`--target all`, what `edgekd export` writes) holds the layer graphs (the staged engine,
calibration) and `model.onnx` (the exit rule compiled in), so its weights are in it twice. An app ships
what it runs:

- web: `model.onnx` + `tokenizer.json` + manifest (+ the model card): what the JS runtime reads in the
  browser or Node;
- mobile: `model.ort`, the compiled graph in ONNX Runtime's ORT format (converted with onnxruntime's own
  tool, optimized for ARM so it also runs here), + tokenizer + manifest (+ card): what ONNX Runtime Mobile
  loads on Android and iOS. Its packages (onnxruntime-android, onnxruntime-objc / -c) are full builds and run
  the fused kernels; `--portable` rebuilds standard operators for a build without them;
- hf: the folder transformers.js and Optimum load as it is (edgekd.hf): `onnx/model.onnx` (int8:
  `onnx/model_quantized.onnx`) whose `speed` is an initializer holding the bundle's default speed (so a tool
  that feeds only the tokenizer's outputs runs with early exit on: exporters/hf.py), `config.json`,
  `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`, the card and the manifest (which hashes
  them all, so edgekd's runtimes load and verify the same folder).

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

TARGETS = ("web", "mobile", "hf")
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


def pack(bundle: str | os.PathLike, out: str | os.PathLike, target: str, overwrite: bool = False,
         choose_texts: list | None = None, portable: bool = False, log=print) -> Path:
    """Write the slim bundle of `bundle` for `target` (web | mobile | hf) to `out`; returns its path. With
    `choose_texts` (web only) the graph is chosen among candidates timed in Chromium (edgekd.web_choice). With
    `portable`, a model.onnx built from onnxruntime's fused kernels is compiled again from the bundle's layer
    graphs written back as standard ONNX operators (exporters.defuse), for runtimes without those kernels."""
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
    if choose_texts is not None and target != "web":
        raise EdgeKDError("--choose times graph candidates in Chromium: it is for --target web")
    if choose_texts is not None and not choose_texts:
        raise EdgeKDError("--choose needs texts to time and compare the candidates on: give --data FILE")
    if choose_texts is not None and portable:
        raise EdgeKDError("--choose times the bundle's own graph forms; --portable rebuilds one: give one of them")
    chosen = None
    full = runtime.load(bundle, engine="graph")
    want = full.outputs(_texts(full), speed=manifest.default_speed)
    with atomic_folder(out) as tmp, tempfile.TemporaryDirectory() as rebuilt:
        graph = bundle / manifest.graph.file
        if portable and manifest.graph.form == "fused":
            from exporters.defuse import rebuild_portable

            log(f"{bundle}'s model.onnx is built from fused kernels: compiling it again from standard operators")
            graph = rebuild_portable(bundle, manifest, Path(rebuilt))
            manifest.graph.form = "portable"
        shutil.copyfile(bundle / manifest.tokenizer, tmp / manifest.tokenizer)
        if target == "web" and choose_texts is not None:
            from edgekd.web_choice import choose

            with tempfile.TemporaryDirectory() as work:
                graph, manifest.precision, manifest.web = choose(bundle, choose_texts, Path(work), log=log)
                file = manifest.graph.file
                shutil.copyfile(graph, tmp / file)
            chosen = manifest.web["chosen"]
        elif target == "web":
            file = manifest.graph.file
            shutil.copyfile(graph, tmp / file)
        elif target == "hf":
            from edgekd.hf import graph_name, write_hf_files
            from exporters.hf import with_default_speed

            file, _ = graph_name(manifest.precision)
            (tmp / file).parent.mkdir()
            with_default_speed(graph, tmp / file, manifest.default_speed)
            manifest.files = write_hf_files(tmp, manifest)
        else:  # ONNX Runtime's mobile packages are full builds: fused kernels included (reduced ones: --portable)
            file = ORT_FILE
            _ort_format(graph, tmp / file)
        manifest.parts = [Part(index=0, name="model", file=file, sha256=sha256_file(tmp / file), kind="compiled",
                               form=manifest.graph.form)]
        manifest.target = target
        manifest.card = manifest.card_sha256 = None
        write_manifest(tmp, manifest)
        write_card(tmp, manifest)  # the card of the slim bundle: its files and how to run them
        slim = runtime.load(tmp)
        if chosen in (None, "as-exported"):  # else its agreement was measured on the texts given (web_choice)
            _same(slim.outputs(_texts(slim), speed=manifest.default_speed), want, f"the {target} bundle", bundle)
        if target == "hf":  # fed only the tokenizer's outputs, as transformers.js and Optimum feed it
            _same(_without_speed(slim, tmp / file), want, f"{file} fed no speed", bundle)
    return out


def _same(got, want, what: str, bundle: Path) -> None:
    if not ((got[1] == want[1]).all() and np.abs(got[0] - want[0]).max() <= 1e-4):
        raise EdgeKDError(f"{what} does not answer as {bundle} does (max logit difference "
                          f"{float(np.abs(got[0] - want[0]).max()):.3g}, exit layers equal: "
                          f"{bool((got[1] == want[1]).all())}); nothing written")


def _without_speed(model: runtime.EdgeModel, graph: Path) -> tuple:
    """The check texts through a plain onnxruntime session of `graph` fed only the tokenizer's outputs."""
    import onnxruntime as ort

    from runtime.manifest import GRAPH_INPUTS, GRAPH_OUTPUTS, part_inputs

    options = ort.SessionOptions()
    options.log_severity_level = 3  # the overridable-initializer warning is what this form is for
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    names = tuple(n for n in part_inputs("compiled", model.manifest.text_pair) if n != GRAPH_INPUTS[2])  # no speed
    logits, layers, _ = session.run(list(GRAPH_OUTPUTS), model.batch(*model.encode(_texts(model))).feeds(names))
    return logits, layers


def _texts(model: runtime.EdgeModel) -> list:
    return [(t, t[::-1]) for t in CHECK_TEXTS] if model.manifest.text_pair else CHECK_TEXTS


def sizes(bundle: str | os.PathLike, work: str | os.PathLike) -> dict[str, int | None]:
    """Bytes of the full bundle and of its slim bundle for each target (packed into `work`); None for a target
    it cannot be packed for here: mobile where the ORT-format converter cannot run (it needs the onnx package)."""
    out: dict[str, int | None] = {"all": bundle_size(bundle)}
    for target in TARGETS:
        folder = Path(work) / f"{Path(bundle).name}-{target}"
        try:
            pack(bundle, folder, target, overwrite=True, log=lambda *_: None)
        except ImportError:
            out[target] = None
            continue
        out[target] = bundle_size(folder)
    return out
