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
             "regression) is within this many points of full depth. Give this or --latency-ms.")] = None,
    latency_ms: Annotated[Optional[float], typer.Option(
        help="Most accurate speed whose mean batch-1 latency per text, measured here, fits this budget. Give this "
             "or --max-drop.")] = None,
    text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None,
    label_column: LabelColumn = None,
) -> None:
    """Choose the bundle's default speed from an accuracy or latency budget, measured on this machine (one of
    --max-drop and --latency-ms is required)."""
    from edgekd.calibrate import calibrate as run_calibrate

    result = run_calibrate(bundle, data, max_drop=max_drop, latency_ms=latency_ms,
                           columns=columns(text_column, text_pair_column, label_column), log=err)
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
