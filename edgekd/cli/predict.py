"""`edgekd predict`: texts, stdin or a file classified with a bundle (no torch)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.app import app, err, friendly
from runtime.items import items_from_arguments, items_from_lines


@app.command()
@friendly
def predict(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    texts: Annotated[Optional[list[str]], typer.Argument(
        help="Texts to classify ('-' reads one per line from stdin; a blank line is answered as an empty text and"
             " marked, so the output lines up with the input). For a bundle of text pairs: the texts two by two"
             " (first, second, first, second, ...); on stdin one pair a line, the two texts separated by a tab"
             " (a line without one is refused).")] = None,
    file: Annotated[Optional[Path], typer.Option(
        help="Classify every row of this file (.txt lines, or .csv/.tsv/.jsonl with a text column), streaming,"
             " in order.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="With --file: write rows here (.jsonl, or .csv by extension); default stdout as JSON Lines.")] = None,
    text_column: Annotated[Optional[str], typer.Option(
        help="With --file: the text column of a csv/tsv/jsonl file.")] = None,
    text_pair_column: Annotated[Optional[str], typer.Option(
        help="With --file and a bundle of text pairs: the second text column (found without the flag for the "
             "usual pair columns, e.g. question1/question2).")] = None,
    resume: Annotated[bool, typer.Option(
        help="With --file --out: continue after the last complete row already in OUT.")] = False,
    speed: Annotated[Optional[float], typer.Option(
        help="Exit threshold in [0, 1]; 0 runs every layer. Default: the bundle's.")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda | auto.")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Texts per batch.")] = 32,
    threshold: Annotated[Optional[float], typer.Option(
        help="Multi-label bundles: a label is on at this probability, for every label [default: the bundle's "
             "thresholds, per label when export chose them; `edgekd inspect` shows them]. Which labels are "
             "returned changes; when a row leaves does not (the exit rule is compiled in).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per text.")] = False,
    engine: Annotated[str, typer.Option(
        help="graph (model.onnx, exit rule inside) | staged (one graph per layer) | auto (what calibration "
             "measured faster).")] = "auto",
) -> None:
    """Classify texts with a bundle (no torch needed): texts as arguments, '-' for stdin, or --file."""
    import runtime

    if file is None and not texts:
        raise runtime.EdgeKDError("give texts to classify, '-' to read them from stdin, or --file PATH")
    if file is not None and texts:
        raise runtime.EdgeKDError("give texts or --file, not both")
    if file is None and (out or text_column or text_pair_column or resume):
        raise runtime.EdgeKDError("--out, --text-column, --text-pair-column and --resume go with --file")
    model = runtime.load(bundle, device=device, engine=engine)
    pair = model.manifest.text_pair
    if file is not None:
        from edgekd.apps.predict_file import predict_file

        rows = predict_file(model, file, out, speed=speed, batch_size=batch_size, text_column=text_column,
                            resume=resume, text_pair_column=text_pair_column, threshold=threshold)
        if out:
            err(f"wrote {rows} rows to {out}")
        return
    if texts == ["-"]:  # one item a line, blank lines kept (answered like --file's empty rows, and marked)
        raw = sys.stdin.buffer.read()
        try:
            decoded = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise runtime.EdgeKDError(f"stdin: line {line} has bytes that are not UTF-8 (at byte {exc.start}); "
                                      "send UTF-8 text") from None
        lines = decoded.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last line
        items = items_from_lines([line.rstrip("\r") for line in lines], pair)
    else:
        items = items_from_arguments(texts, pair)
    results = model.classify(items, speed=speed, batch_size=batch_size, threshold=threshold)
    for text, r in zip(items, results):
        given = {"text": text} if isinstance(text, str) else {"text": text[0], "text_pair": text[1]}
        empty = {"empty": True} if not any(given.values()) else {}
        if as_json:
            typer.echo(json.dumps({**given, **r.to_dict(), **empty}))
        else:
            answer = (f"{r.label}\t{r.probs[r.label]:.3f}" if r.label is not None else
                      (",".join(f"{name} {r.probs[name]:.3f}" for name in r.labels) or "(none)")
                      if r.labels is not None else
                      (" | ".join(f"{e['word']} {e['entity_group']} {e['score']:.3f}" for e in r.entities) or
                       "(no entity)") if r.entities is not None else f"{r.score:.4f}")
            typer.echo(f"{answer}\tlayer {r.exit_layer}/{model.num_layers}\t" + "\t".join(given.values()))
