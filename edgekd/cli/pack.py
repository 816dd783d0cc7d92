"""`edgekd pack`: a slim bundle for one target (edgekd.pack)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli.app import app, err, friendly


@app.command()
@friendly
def pack(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `edgekd export`.")],
    target: Annotated[str, typer.Option(
        help="web (model.onnx + tokenizer + manifest: the JS runtime in the browser or Node) | mobile "
             "(model.ort, the ORT format that ONNX Runtime Mobile loads, + tokenizer + manifest) | hf (the folder "
             "transformers.js `pipeline('text-classification', DIR)` and Optimum "
             "`ORTModelForSequenceClassification.from_pretrained(DIR)` load unchanged: onnx/model.onnx with the "
             "default speed inside, config.json, tokenizer files; edgekd's runtimes load it too).")],
    out: Annotated[Path, typer.Option(help="Folder to write the slim bundle to.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing folder at --out (atomically).")] = False,
    choose: Annotated[bool, typer.Option(
        help="web: time the graph candidates in Chromium (as exported; int8 weights with fp32 compute; int8 "
             "dynamic) at batch 1 on --data's texts, keep the fastest that answers as the full bundle on >= 99% "
             "of them, and record the timings in the manifest (needs chromium and js/node_modules).")] = False,
    data: Annotated[Path | None, typer.Option(help="Texts for --choose: a labelled or unlabelled file (its first "
                                                   "500 texts).")] = None,
    portable: Annotated[bool, typer.Option(
        help="Standard ONNX operators only: where model.onnx is built from onnxruntime's fused kernels "
             "(Attention, SkipLayerNormalization, BiasGelu), compile it again from the layer graphs written back "
             "as standard operators and check it against them. For ONNX Runtime builds without contrib "
             "operators (reduced or --disable_contrib_ops mobile builds) and other engines; onnxruntime's own "
             "packages (Python, Node, web, onnxruntime-android / -objc / -c) run the fused form.")] = False,
) -> None:
    """Write a slim bundle holding only what one target's runtime reads (an app ships what it runs)."""
    from edgekd.pack import pack as run_pack
    from runtime.manifest import bundle_size

    texts = None
    if choose:
        if data is None:
            raise typer.BadParameter("--choose needs --data FILE: the texts to time and compare the candidates on")
        from edgekd.data import read_unlabelled
        from runtime.manifest import read_manifest

        texts = read_unlabelled(data, text_pair_column=None).texts[:500]
        if read_manifest(bundle).text_pair:
            texts = [tuple(t) if isinstance(t, (list, tuple)) else (t, "") for t in texts]
    path = run_pack(bundle, out, target, overwrite=overwrite, choose_texts=texts, portable=portable, log=err)
    err(f"wrote {path}: {bundle_size(path) / 1e6:.2f} MB for {target} ({bundle_size(bundle) / 1e6:.2f} MB in "
        f"{bundle}); it answers as the full bundle on the check texts")
