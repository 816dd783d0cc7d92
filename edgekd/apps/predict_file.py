"""`edgekd predict BUNDLE --file PATH`: classify a file of any size, streaming, in input order.

Input: .txt (one text a line), or .csv / .tsv / .jsonl with a text column. Output:
JSON Lines (default, also to stdout) or CSV (by --out's extension), one newline-terminated
row per input row, empty inputs included and marked. Memory stays constant: rows are read,
classified and written a chunk at a time. With `resume`, rows already in OUT (complete
lines) are skipped, so a killed run loses at most the chunk in flight. Torch-free.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import IO, Iterator

from edgekd.data import TEXT_COLUMNS, pick_column, text_columns
from edgekd.rows import FORMATS, RowReader, item_of
from runtime.errors import EdgeKDError

CHUNK = 1024  # rows read, classified and written together
OUT_FORMATS = (".jsonl", ".csv")  # what --out can be: appendable row by row
PROGRESS_EVERY_S = 5.0  # a progress line on stderr this often when stderr is not a terminal
# the answer columns of a CSV/TSV output by problem type (multi-label: the labels that are on, comma-separated
# as in the training files; regression: the value)
ANSWER_FIELDS = {"single-label": ["label", "probability"], "multi-label": ["labels"], "regression": ["score"],
                 "token-classification": ["entities"]}  # the entities as a JSON list in one cell


def csv_fields(model) -> list[str]:
    """The columns of a CSV/TSV output for `model`'s problem type and input shape."""
    texts = ["text", "text_pair"] if model.manifest.text_pair else ["text"]
    return ["row", *texts, *ANSWER_FIELDS[model.problem], "exit_layer", "uncertainty", "empty"]


def iter_texts(path: Path, text_column: str | None = None, text_pair: bool = False,
               text_pair_column: str | None = None) -> Iterator:
    """Items of `path` in order, one per input row (empty strings for empty rows), read lazily: texts, or with
    `text_pair` (text, text_pair) from two columns (named, or a known pair such as question1/question2; a .txt
    line holds the two texts separated by a tab). TSV, CSV and JSONL rows come through the one row reader
    (edgekd.rows) that training uses too."""
    fmt = FORMATS.get(path.suffix.lower(), "lines")  # any other extension: one text a line
    try:
        handle = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise EdgeKDError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        try:
            if fmt == "lines":
                for line in handle:
                    line = line.rstrip("\r\n")
                    yield tuple((line.split("\t", 1) + [""])[:2]) if text_pair else line
                return
            reader = RowReader(handle, path, fmt, keep_blank=True)
            columns = None
            for _, row in reader:
                if row is not None and columns is None:
                    columns = _columns(reader.columns, text_column, text_pair, text_pair_column, path)
                if columns is None:  # blank rows before the first one that names the columns
                    yield ("", "") if text_pair else ""
                    continue
                yield item_of(row, *columns)
        except UnicodeDecodeError as exc:
            raise EdgeKDError(f"{path}: bytes that are not UTF-8 (at byte {exc.start} of a chunk); re-save the file "
                              "as UTF-8") from None


def _columns(columns: list[str], wanted: str | None, text_pair: bool, text_pair_column: str | None, path: Path):
    """(text column, second text column or None) of a file for a bundle of single texts or of pairs."""
    if not text_pair:
        if text_pair_column:
            raise EdgeKDError("--text-pair-column: this bundle classifies single texts")
        return pick_column(columns, wanted, TEXT_COLUMNS, "text", path), None
    first, second = text_columns(columns, wanted, text_pair_column, path)
    if second is None:
        raise EdgeKDError(f"{path}: this bundle classifies text pairs but no second text column was found "
                          f"(columns: {', '.join(columns)}); name it with --text-pair-column")
    return first, second


def done_rows(out: Path) -> int:
    """Complete rows already in `out` (a torn last line is cut off, so it is written again)."""
    if not out.is_file():
        return 0
    data = out.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep < len(data):
        with open(out, "r+b") as handle:
            handle.truncate(keep)
    rows = data[:keep].count(b"\n")
    return rows - 1 if out.suffix.lower() == ".csv" and rows else rows


def predict_file(model, path: str | os.PathLike, out: str | os.PathLike | None = None, *, speed: float | None = None,
                 batch_size: int = 32, text_column: str | None = None, resume: bool = False,
                 progress: bool = True, text_pair_column: str | None = None, threshold: float | None = None) -> int:
    """Classify every row of `path` into `out` (stdout when None). Returns the rows written now."""
    path = Path(path)
    target = Path(out) if out else None
    if target is not None and target.suffix.lower() not in OUT_FORMATS:
        raise EdgeKDError(f"--out {target}: cannot write {target.suffix or 'a file without an extension'}; give a "
                          f"{' or '.join(OUT_FORMATS)} file (rows are appended as they are classified, so a killed run "
                          "can --resume)")
    as_csv = target is not None and target.suffix.lower() == ".csv"
    if target is not None and target.exists() and not resume:
        raise EdgeKDError(f"{target} already exists; pass --resume to continue it, or choose another --out")
    skip = done_rows(target) if (target is not None and resume) else 0
    handle: IO[str] = (open(target, "a", encoding="utf-8", newline="") if target is not None
                       else io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=True))
    pair = model.manifest.text_pair
    writer = csv.DictWriter(handle, csv_fields(model), lineterminator="\n") if as_csv else None
    if writer is not None and skip == 0 and handle.tell() == 0:
        writer.writeheader()
    bar = _progress(progress, skip)
    written = 0
    try:
        chunk: list[str] = []
        row = 0
        for row, text in enumerate(iter_texts(path, text_column, pair, text_pair_column), start=1):
            if row <= skip:
                continue
            chunk.append(text)
            if len(chunk) == CHUNK:
                written += _write(model, chunk, row - len(chunk) + 1, speed, batch_size, handle, writer, threshold)
                bar(len(chunk))
                chunk = []
        if chunk:
            written += _write(model, chunk, row - len(chunk) + 1, speed, batch_size, handle, writer, threshold)
            bar(len(chunk))
    except KeyboardInterrupt:
        done = skip + written
        sys.stderr.write(f"\ninterrupted after row {done}: " + (
            f"{target} holds rows 1-{done}; run the same command with --resume to continue\n" if target is not None
            else "rerun with --out FILE to be able to --resume\n"))
        raise
    finally:
        bar(0, close=True)
        if target is not None:
            handle.close()
        else:
            handle.detach()
    return written


def _write(model, texts: list, first_row: int, speed, batch_size, handle, writer, threshold=None) -> int:
    # every row is answered as classify answers it; an empty one (both texts empty, for pairs) is also marked
    results = model.classify(texts, speed=speed, batch_size=batch_size, threshold=threshold)
    for i, (text, r) in enumerate(zip(texts, results)):
        empty = not (text.strip() if isinstance(text, str) else any(x.strip() for x in text))
        row = {"row": first_row + i, "text": text} if isinstance(text, str) else \
            {"row": first_row + i, "text": text[0], "text_pair": text[1]}
        row.update(r.to_dict())
        if empty:
            row["empty"] = True
        if writer is not None:
            flat = dict(row, empty=empty)
            if r.label is not None:
                flat["probability"] = r.probs[r.label]
            if r.labels is not None:
                flat["labels"] = ",".join(r.labels)
            if r.entities is not None:
                flat["entities"] = json.dumps(r.entities, ensure_ascii=False)
            flat.pop("probs", None)
            writer.writerow(flat)
        else:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    handle.flush()
    return len(texts)


def _progress(enabled: bool, initial: int):
    """A progress callback on stderr: tqdm's bar on a terminal, else a plain line every PROGRESS_EVERY_S seconds
    (logs and pipes get progress too)."""
    if not enabled:
        return lambda n, close=False: None
    try:
        from tqdm import tqdm
    except ImportError:  # the runtime's own install has no tqdm: plain lines then
        tqdm = None
    if tqdm is None or not sys.stderr.isatty():
        import time

        state = {"rows": initial, "began": time.perf_counter(), "last": time.perf_counter()}

        def line(n: int, close: bool = False) -> None:
            state["rows"] += n
            now = time.perf_counter()
            if close or now - state["last"] >= PROGRESS_EVERY_S:
                state["last"] = now
                rate = (state["rows"] - initial) / max(now - state["began"], 1e-9)
                end = ", done\n" if close else "\n"
                sys.stderr.write(f"classify: {state['rows']} rows ({rate:.0f} rows/s)" + end)
                sys.stderr.flush()

        return line
    bar = tqdm(initial=initial, unit="text", desc="classify", file=sys.stderr, mininterval=0.5)

    def update(n: int, close: bool = False) -> None:
        bar.update(n)
        if close:
            bar.close()

    return update
