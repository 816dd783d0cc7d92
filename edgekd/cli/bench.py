"""`edgekd bench`: every system side by side in one run (edgekd.bench)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.app import LabelColumn, TextColumn, TextPairColumn, app, columns, err, friendly


def bench_systems_help() -> str:
    # the names, without importing the bench (it imports onnxruntime): kept equal to registry.GROUPS by a test
    return ("teacher-torch, teacher-onnx, teacher-optimum, student-onnx, student-torch-exit, edgekd-staged, "
            "edgekd-graph, edgekd-threads, fasttext, tfidf-lr, model2vec, crf, node, browser")


@app.command()
@friendly
def bench(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    data: Annotated[Path, typer.Option(help="Labelled file to measure on (e.g. SST-2 dev.tsv).")],
    run: Annotated[Optional[Path], typer.Option(
        "--run", help="The run folder (edgekd distill --out): adds the teacher (PyTorch, one ONNX graph), the student "
                      "as one graph and with per-sample exit in PyTorch.")] = None,
    teacher: Annotated[Optional[Path], typer.Option(help="Deprecated name of --run.", hidden=True)] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="Folder for <stem>.json, .md and .png [default: ./<bundle name>-bench].")] = None,
    stem: Annotated[str, typer.Option(help="File name stem of the results.")] = "bench",
    speeds: Annotated[Optional[str], typer.Option(help="Comma-separated speeds (default: 0,0.1,...,0.6,0.8).")] = None,
    latency_texts: Annotated[int, typer.Option(help="Texts timed one by one at batch 1.")] = 200,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N texts.")] = None,
    also: Annotated[Optional[list[Path]], typer.Option(
        help="Another bundle of the same student (e.g. int8) measured beside it at the same speeds.")] = None,
    js: Annotated[bool, typer.Option(
        help="Add the compiled graph in Node and in Chromium (needs node, js/node_modules, chromium).")] = True,
    competitors: Annotated[bool, typer.Option(
        help="Add what a user would deploy instead: the teacher fused + int8 (the Optimum way), fastText, TF-"
             "IDF + LR, model2vec (for token classification: a CRF on word features); and the accuracy/latency "
             "frontier plot.")] = False,
    train: Annotated[Optional[Path], typer.Option(help="Training file for --competitors (default: the run's).")] = None,
    profile: Annotated[bool, typer.Option(
        help="Write onnxruntime's per-node profile of one batch through model.onnx (<stem>_profile.json) and "
             "its time per operator.")] = False,
    large_batch: Annotated[bool, typer.Option(
        help="Also throughput at batch 256 (bulk scoring) for every system.")] = False,
    rss: Annotated[bool, typer.Option(
        help="Also peak RSS of every system, each loaded alone in a fresh process and run over 256 texts at "
             "batch 32 (what a service running only it holds).")] = False,
    systems: Annotated[Optional[str], typer.Option(
        help="Comma-separated systems to run (default: every one the other options enable): "
             + bench_systems_help() + ".")] = None,
    skip: Annotated[Optional[str], typer.Option(
        help="Comma-separated systems to leave out (same names as --systems).")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue a killed or partly failed run in --out: measure only what <stem>.state.json lacks (the "
             "same settings are required).")] = False,
    text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None,
    label_column: LabelColumn = None,
) -> None:
    """Accuracy, layers, FLOPs, latency and throughput of a bundle beside its baselines, in one run.

    Each measurement is recorded as it completes (<stem>.state.json), so a kill loses at most the system in
    progress (--resume goes on); a system that fails is named and the others are still written (exit 2)."""
    from edgekd.bench import BenchOptions, run_bench
    from runtime.exits import REPORT_SPEEDS, check_speed

    try:
        values = [check_speed(float(s)) for s in speeds.split(",") if s.strip()] if speeds else list(REPORT_SPEEDS)
    except ValueError as exc:
        raise typer.BadParameter(f"--speeds: {exc}") from None
    if teacher is not None:
        err("warning: --teacher is deprecated for bench (it takes the run folder); use --run")
        run = run or teacher

    def names(value: str | None) -> list[str]:
        return [n.strip() for n in (value or "").split(",") if n.strip()]

    run_bench(BenchOptions(bundle=bundle, data=data, out=out, run_dir=run, speeds=values, latency_texts=latency_texts,
                           limit=limit, stem=stem, also=list(also or []), js=js, competitors=competitors, train=train,
                           profile=profile, large_batch=large_batch, rss=rss, systems=names(systems) or None,
                           skip=names(skip), resume=resume,
                           columns=columns(text_column, text_pair_column, label_column)), log=err)
