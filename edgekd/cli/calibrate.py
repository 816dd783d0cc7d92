"""`edgekd calibrate`: the default speed from an accuracy or latency budget (edgekd.calibrate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.app import LabelColumn, TextColumn, TextPairColumn, app, columns, err, friendly
from edgekd.present import calibration_lines, engine_line, runtime_threads_line


@app.command()
@friendly
def calibrate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (its manifest is updated in place, atomically).")],
    data: Annotated[Path, typer.Option(help="Labelled file to calibrate on (e.g. SST-2 dev.tsv).")],
    max_drop: Annotated[Optional[float], typer.Option(
        help="Largest speed whose main metric (accuracy; micro-F1 for multi-label; Pearson x 100 for "
             "regression) is within this many points of full depth. Give this or --latency-ms. With --confidence: "
             "the share of rows, in %, whose answer may get worse.")] = None,
    latency_ms: Annotated[Optional[float], typer.Option(
        help="Most accurate speed whose mean batch-1 latency per text, measured here, fits this budget. Give this "
             "or --max-drop.")] = None,
    confidence: Annotated[Optional[float], typer.Option(
        help="Choose the speed with a guarantee: with this probability (e.g. 0.95) over the draw of the calibration "
             "rows, at most --max-drop percent of new rows get a worse answer than at full depth (single-label: "
             "wrong where full depth is right; multi-label: another label set; regression: a score moved by more "
             "than --tolerance). --max-drop is then that share of rows, in %, not points of a metric.")] = None,
    tolerance: Annotated[Optional[float], typer.Option(
        help="With --confidence on a regression bundle: how far a score may move from full depth's, in the data's "
             "units [default: a tenth of the training targets' standard deviation].")] = None,
    text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None,
    label_column: LabelColumn = None,
) -> None:
    """Choose the bundle's default speed from an accuracy or latency budget, measured on this machine (one of
    --max-drop and --latency-ms is required)."""
    from edgekd.calibrate import calibrate as run_calibrate

    result = run_calibrate(bundle, data, max_drop=max_drop, latency_ms=latency_ms,
                           columns=columns(text_column, text_pair_column, label_column), log=err,
                           confidence=confidence, tolerance=tolerance)
    for line in calibration_lines(result.points, result.metric, result.chosen):
        typer.echo(line)
    err(f"default speed {result.chosen:g} ({result.rule}; full depth {result.metric} {100 * result.full_accuracy:.2f}) "
        "written to "
        f"{bundle}/manifest.json")
    line = engine_line(bundle)
    if line:
        err(line)
    threads = runtime_threads_line(bundle)
    if threads:
        err(threads)
