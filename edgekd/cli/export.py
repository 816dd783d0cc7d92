"""`edgekd export`: a run folder's student -> a bundle (edgekd.distill.export.export_run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.app import LabelColumn, TextColumn, TextPairColumn, app, columns, err, friendly
from edgekd.run_folder import check_run_folder, run_dev_file


@app.command()
@friendly
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `edgekd distill` (its student/).")],
    out: Annotated[Path, typer.Option(help="Bundle folder to write.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle (atomically).")] = False,
    atol: Annotated[float, typer.Option(help="Tolerance of the ONNX-vs-torch check of every part.")] = 1e-4,
    speed: Annotated[Optional[float], typer.Option(
        help="Default speed stored in the manifest (instead of calibrating one).")] = None,
    quantize: Annotated[str, typer.Option(help="fp32 | int8 (CPU) | fp16 (GPU).")] = "fp32",
    int8: Annotated[str, typer.Option(
        help="With --quantize int8: auto | dynamic | dynamic-per-channel | static | static-per-channel | "
             "dynamic-fp32-heads (the exit heads kept fp32: for decisions near a threshold) | "
             "fused-dynamic (each layer fused by onnxruntime's transformer optimizer, then dynamic int8: "
             "QAttention, MatMulInteger). auto builds each on --data (static ones calibrated on its texts), "
             "compares every exit's labels with fp32 and times them here, and keeps the fastest that agrees on "
             ">= 99% (dynamic when there is no --data); the record goes into the manifest.")] = "auto",
    data: Annotated[Optional[Path], typer.Option(
        help="Held-out labelled file: the default speed is calibrated on it, and a quantized bundle's "
             "agreement with fp32 measured [default: the run's dev set, which is optimistic since it also "
             "chose the checkpoints].")] = None,
    max_drop: Annotated[Optional[float], typer.Option(
        help="Calibration budget: accuracy points allowed below full depth [default: 1.0].")] = None,
    calibrate: Annotated[bool, typer.Option(
        "--calibrate/--no-calibrate",
        help="Choose the default speed by measurement, so early exit is on (--no-calibrate, or --speed, keeps "
             "a fixed speed).")] = True,
    vocab_keep: Annotated[Optional[float], typer.Option(
        help="Compress the vocabulary (GLMD): keep this fraction of the tokens (0 < f <= 1).")] = None,
    vocab_size: Annotated[Optional[int], typer.Option(
        help="Compress the vocabulary (GLMD): keep this many tokens (instead of --vocab-keep).")] = None,
    vocab_metric: Annotated[str, typer.Option(help="Nearest kept token by dot | cosine.")] = "dot",
    optimize: Annotated[str, typer.Option(
        help="Layer graphs: none (plain) | fused (onnxruntime transformer optimizer) | auto (time both on this"
             " machine at batch 1 and 32, keep the faster; the choice and timings go into the manifest). "
             "model.onnx always stays plain ONNX.")] = "auto",
    mobile_report: Annotated[bool, typer.Option(
        "--mobile-report/--no-mobile-report",
        help="Record in the manifest what onnxruntime's mobile usability checker says of the graphs for NNAPI "
             "and CoreML (`edgekd inspect --targets` shows it).")] = True,
    graph_form: Annotated[str, typer.Option(
        help="model.onnx from: auto (the layer forms --optimize kept: onnxruntime's fused kernels where they "
             "measured faster; every edgekd target runs onnxruntime) | portable (standard ONNX operators only, "
             "for other runtimes and ONNX Runtime Mobile).")] = "auto",
    confidence: Annotated[Optional[float], typer.Option(
        help="Calibrate with a guarantee (see `edgekd calibrate --help`): --max-drop is then the share of rows, in "
             "%, whose answer may get worse, kept with this probability.")] = None,
    tolerance: Annotated[Optional[float], typer.Option(
        help="With --confidence on a regression run: how far a score may move, in the data's units.")] = None,
    text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None,
    label_column: LabelColumn = None,
) -> None:
    """Export a run's student as a bundle: model.onnx (early exit compiled in), one graph per layer, tokenizer,
    manifest; every graph checked against torch, model.onnx against the staged graphs."""
    from edgekd.distill.export import export_run
    from runtime.errors import InputError
    from runtime.exits import check_speed

    check_run_folder(run_dir)  # before any work or any line about it
    from exporters.bundle import GRAPH_FORMS

    if graph_form not in GRAPH_FORMS:
        raise InputError(f"--graph-form {graph_form!r} is not one of {', '.join(GRAPH_FORMS)}")
    if speed is not None:
        try:
            check_speed(speed)
        except (TypeError, ValueError) as exc:
            raise InputError(f"--speed {speed:g}: {exc}") from None
    if calibrate and speed is None:
        if data is None:
            data = run_dev_file(run_dir)
            if data is not None:
                err(f"calibrating the default speed on the run's dev set ({data}) with --max-drop "
                    f"{1.0 if max_drop is None else max_drop:g}: optimistic, since the same set chose the "
                    "checkpoints; give --data with held-out texts for an honest speed (--no-calibrate keeps speed 0)")
        if data is None:
            err("no --data and the run's dev set is gone: the default speed stays 0 (every layer); calibrate later "
                "with `edgekd calibrate BUNDLE --data FILE --max-drop 1`")
        else:
            max_drop = 1.0 if max_drop is None else max_drop
    elif not calibrate:
        max_drop = None
    result = export_run(run_dir, out, overwrite=overwrite, atol=atol, default_speed=speed or 0.0, precision=quantize,
                        int8=int8, data=data, max_drop=max_drop, vocab_keep=vocab_keep, vocab_size=vocab_size,
                        vocab_metric=vocab_metric, optimize=optimize, mobile_report=mobile_report,
                        columns=columns(text_column, text_pair_column, label_column), confidence=confidence,
                        tolerance=tolerance, graph_form=graph_form, log=err)
    worst = max((c.max_diff for c in result.checks), default=0.0)
    err(f"wrote {result.path} ({len(result.manifest.parts)} parts, {result.manifest.precision}; "
        f"{len(result.checks)} fp32 checks against torch, max diff {worst:.2e} <= atol {atol:g})")
    check = result.manifest.precision_check
    if check:
        metric = check.get("metric", "accuracy")
        for speed_key, row in check["speeds"].items():
            err(f"  {check['precision']} vs fp32 at speed {speed_key}: predictions agree "
                f"{100 * row['prediction_agreement']:.2f}%, "
                f"exit layers {100 * row['exit_agreement']:.2f}%, {metric} {100 * row[metric]:.2f} "
                f"(fp32 {100 * row[metric + '_fp32']:.2f})")
    if result.manifest.calibration:
        err(f"  calibrated default speed {result.manifest.default_speed:g} ({result.manifest.calibration.rule})")
