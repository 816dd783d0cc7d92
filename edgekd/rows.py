"""The one reader of data rows: TSV, CSV and JSONL, streamed row by row from an open text handle. Training
(edgekd.data.read_labelled, read_unlabelled) and `predict --file` (edgekd.apps.predict_file) read through it, so
a file is split into rows, and refused, the same way everywhere. Torch-free."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO, Iterator

from runtime.errors import EdgeKDError


class DataError(EdgeKDError):
    """A data file cannot be used as given."""


FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".txt": "lines"}


def file_format(path: Path, fmt: str | None = None) -> str:
    """tsv | csv | jsonl | lines, from `fmt` or the file's extension."""
    if fmt:
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise DataError(f"{path}: cannot tell the format from the extension {path.suffix!r}; "
                        f"use one of {', '.join(FORMATS)} or pass the format explicitly") from None


class RowReader:
    """Rows of a TSV, CSV or JSONL file as (line number, {column: value}), in order, read lazily.

    TSV is read without quoting (a quote is text, as in GLUE's files), CSV with standard quoting (a quoted field
    keeps its line breaks); only \\n and \\r end a row. A blank row is skipped, or given as (number, None) with
    `keep_blank` (predict --file answers every input row). `columns` holds the header of a TSV / CSV file once
    iteration has begun, and for JSONL every key seen so far, in order of first appearance."""

    def __init__(self, handle: IO[str], path: Path, fmt: str, keep_blank: bool = False):
        if fmt not in ("tsv", "csv", "jsonl"):
            raise DataError(f"{path}: {fmt} files hold no columns; give a TSV, CSV or JSONL file")
        self.handle, self.path, self.fmt, self.keep_blank = handle, path, fmt, keep_blank
        self.columns: list[str] = []

    def __iter__(self) -> Iterator[tuple[int, dict | None]]:
        return self._jsonl() if self.fmt == "jsonl" else self._delimited()

    def _jsonl(self) -> Iterator[tuple[int, dict | None]]:
        for number, line in enumerate(self.handle, start=1):
            if not line.strip():
                if self.keep_blank:
                    yield number, None
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{self.path}: line {number} is not valid JSON ({exc.msg}); JSONL wants one "
                                "object a line") from None
            if not isinstance(row, dict):
                raise DataError(f"{self.path}: line {number} is not a JSON object")
            self.columns += [c for c in row if c not in self.columns]
            yield number, row

    def _delimited(self) -> Iterator[tuple[int, dict | None]]:
        delimiter = "\t" if self.fmt == "tsv" else ","
        quoting = csv.QUOTE_NONE if self.fmt == "tsv" else csv.QUOTE_MINIMAL
        reader = csv.reader(self.handle, delimiter=delimiter, quoting=quoting)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{self.path}: the header cannot be read as {self.fmt.upper()} ({exc})") from None
        if len(header) == 1:
            other = "," if delimiter == "\t" else "\t"
            if other in header[0]:
                raise DataError(f"{self.path}: the header has one column but contains {other!r}; the file looks "
                                f"{'comma' if other == ',' else 'tab'}-separated, so give it a "
                                f"{'.csv' if other == ',' else '.tsv'} extension")
        self.columns = [h.strip() for h in header]
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DataError(f"{self.path}: line {reader.line_num} cannot be read as {self.fmt.upper()} "
                                f"({exc})") from None
            number = reader.line_num
            if not values or all(not v.strip() for v in values):
                if self.keep_blank:
                    yield number, None
                continue
            if len(values) != len(self.columns):
                raise DataError(f"{self.path}: row {number} has {len(values)} fields but the header has "
                                f"{len(self.columns)} ({', '.join(self.columns)}); check the delimiter or quoting")
            yield number, dict(zip(self.columns, values))


def item_of(row: dict | None, text_column: str, text_pair_column: str | None):
    """A row's input item: its text, or (text, text_pair) with a second column; a blank row gives empty ones."""
    row = row or {}
    text = str(row.get(text_column) or "").strip()
    return text if text_pair_column is None else (text, str(row.get(text_pair_column) or "").strip())
