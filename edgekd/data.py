"""Read labelled and unlabelled text: TSV, CSV, JSONL, or plain lines.

Errors name the file, the row and the fix. Labels may be names or integers; the
label set comes from the training file and is saved into the run folder.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgekd.rows import DataError, RowReader, file_format, item_of  # noqa: F401  (DataError: re-exported)
from runtime.exits import PROBLEMS, TOKENS

TEXT_COLUMNS = ("sentence", "text", "content", "review", "sentence1", "document")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target", "is_duplicate", "quality", "gold_label", "score")
# (first, second) text columns of the usual text-pair sets: GLUE (MRPC/STS-B/RTE, QQP, MNLI), JSONL text_pair,
# rerankers; recognised when no --text-column / --text-pair-column is given
PAIR_COLUMNS = (("sentence1", "sentence2"), ("question1", "question2"), ("premise", "hypothesis"),
                ("text", "text_pair"), ("query", "passage"), ("#1 String", "#2 String"))


@dataclass
class TextDataset:
    texts: list  # str items, or (text, text_pair) tuples for a pair set
    # per row: an index into label_names (single-label), a list of them (multi-label), a float (regression), the
    # tag names of its words (token-classification: texts are the words joined by spaces); None for unlabelled text
    labels: list | None
    label_names: list[str]  # regression: one name, the target column's
    source: str
    columns: str = ""  # which columns were read, for the log ("text column 'sentence', label column 'label'")
    problem: str = "single-label"  # single-label | multi-label | regression | token-classification
    problem_why: str = ""  # how the problem type was found, for the log and the run folder

    @property
    def text_pair(self) -> bool:
        return bool(self.texts) and isinstance(self.texts[0], tuple)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, count: int | None) -> TextDataset:
        """The first `count` rows (all when None)."""
        if count is None or count >= len(self):
            return self
        labels = None if self.labels is None else self.labels[:count]
        return TextDataset(self.texts[:count], labels, self.label_names, f"{self.source} (first {count})",
                           self.columns, self.problem, self.problem_why)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line} has bytes that are not UTF-8 (at byte {exc.start}); "
                        "re-save the file as UTF-8") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    return text


def _rows(path: Path, fmt: str) -> tuple[list[str], list[tuple[int, dict]]]:
    """(columns, [(line number, row dict)]) of a whole file, read through the one row reader (edgekd.rows)."""
    reader = RowReader(io.StringIO(_read_text(path), newline=""), path, fmt)
    rows = list(reader)
    return reader.columns, rows


def pick_column(columns: list[str], wanted: str | None, defaults: tuple[str, ...], what: str, path: Path) -> str:
    if wanted:
        if wanted not in columns:
            raise DataError(f"{path}: no {what} column {wanted!r}; columns are: {', '.join(columns)}")
        return wanted
    for name in defaults:
        for column in columns:
            if column.lower() == name.lower():
                return column
    raise DataError(f"{path}: no {what} column found (looked for {', '.join(defaults)}); columns are: "
                    f"{', '.join(columns)}. Name it with --{what}-column")


def text_columns(columns: list[str], text_column: str | None, text_pair_column: str | None,
                 path: Path) -> tuple[str, str | None]:
    """(text column, second text column or None): as named, or a known pair of columns, or one text column."""
    if text_pair_column:
        if text_pair_column not in columns:
            raise DataError(f"{path}: no second text column {text_pair_column!r} (--text-pair-column); columns are: "
                            f"{', '.join(columns)}")
        first = text_column or next((a for a, b in PAIR_COLUMNS if b == text_pair_column and a in columns), None)
        return pick_column(columns, first, TEXT_COLUMNS, "text", path), text_pair_column
    if not text_column:
        for first, second in PAIR_COLUMNS:
            if first in columns and second in columns:
                return first, second
    return pick_column(columns, text_column, TEXT_COLUMNS, "text", path), None


def normalize_label(value) -> str:
    """One spelling per label: numbers that are whole become their integer ("1.0", " 1", 1 -> "1")."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number == int(number) and not isinstance(value, bool):
        return str(int(number))
    return text


def _label_order(values: list[str]) -> list[str]:
    unique = sorted(set(values))
    try:
        return sorted(unique, key=int)
    except ValueError:
        return unique


def _cell_labels(value) -> list[str]:
    """A multi-label cell as label spellings: a JSON list, or comma-separated text ("8,20")."""
    if isinstance(value, list):
        return [normalize_label(v) for v in value]
    return [normalize_label(v) for v in str(value).split(",") if v.strip()]


def _is_number(value) -> bool:
    try:
        return math.isfinite(float(str(value).strip()))
    except ValueError:
        return False


def detect_problem(values: list) -> tuple[str, str]:
    """(problem type, why) from a label column's raw cells: a JSON list or a cell listing several labels
    ("8,20") -> multi-label; numbers that are not all whole -> regression; else single-label."""
    listed = next((v for v in values if isinstance(v, list) or (isinstance(v, str) and "," in v)), None)
    if listed is not None:
        return "multi-label", f"a label cell lists several labels ({json.dumps(listed)})"
    if values and all(not isinstance(v, bool) and _is_number(v) for v in values):
        fraction = next((v for v in values if float(str(v)) != int(float(str(v)))), None)
        if fraction is not None:
            return "regression", f"the labels are numbers, not all whole ({str(fraction).strip()!r})"
    return "single-label", "one label per row"


def is_token_file(path: str | os.PathLike) -> bool:
    """Whether `path` holds token-classification data: CoNLL columns (edgekd.tokens.is_conll), or JSONL whose
    first object has a `tokens` list."""
    from edgekd.tokens import is_conll

    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() == ".jsonl":
        with path.open(encoding="utf-8", errors="replace") as f:
            first = next((line for line in f if line.strip()), "")
        try:
            row = json.loads(first)
        except json.JSONDecodeError:
            return False
        return isinstance(row, dict) and isinstance(row.get("tokens"), list)
    return is_conll(path)


def read_token_labelled(path: Path, label_names: list[str] | None, problem: str | None) -> TextDataset:
    """A token-classification file as a TextDataset: texts are the sentences' words joined by spaces, labels
    each sentence's tag names (one a word), label_names the tags (train's, or --label-names for tag ids)."""
    from edgekd.tokens import read_conll, read_token_jsonl

    if problem not in (None, TOKENS):
        raise DataError(f"{path} holds token-classification data (a tag a word), not {problem}")
    jsonl = path.suffix.lower() in (".jsonl", ".json")
    data = read_token_jsonl(path, label_names) if jsonl else read_conll(path)
    if label_names:
        unknown = sorted({t for tags in data.tags for t in tags} - set(label_names))
        if unknown:
            raise DataError(f"{path}: tags {unknown} are not among the labels {list(label_names)}")
    spaced = next((w for words in data.words for w in words if not w or any(c.isspace() for c in w)), None)
    if spaced is not None:
        raise DataError(f"{path}: the word {spaced!r} is empty or holds whitespace; one word a token")
    found = "JSONL with tokens and tags" if jsonl else "CoNLL columns (a word and its tag a line)"
    return TextDataset([" ".join(w) for w in data.words], data.tags, list(label_names or data.labels), str(path),
                       f"{found}, {len(data.labels if not label_names else label_names)} tags", TOKENS,
                       problem_why="as asked" if problem == TOKENS else f"{found} in {path.name}")


def read_labelled(
    path: str | os.PathLike,
    text_column: str | None = None,
    label_column: str | None = None,
    label_names: list[str] | None = None,
    fmt: str | None = None,
    label_values: list[str] | None = None,
    text_pair_column: str | None = None,
    problem: str | None = None,
    accept_labels: bool = False,
) -> TextDataset:
    """Read a labelled file. With `label_names` (e.g. the train set's), every
    label must be one of them (or of `label_values`, the data's own spellings of
    the same classes, in the same order); otherwise the names are the sorted set found.
    A text-pair file (`text_pair_column`, or a known pair of columns such as sentence1/sentence2 or
    question1/question2) gives (text, text_pair) items; an empty second text is a valid pair.
    `problem` (single-label | multi-label | regression | token-classification): how to read the labels; None
    finds it from them (`detect_problem`), or from the file for token classification (`is_token_file`).
    Multi-label cells list labels (comma-separated, or a JSON list in JSONL);
    regression labels are numbers (non-numbers are refused, naming the row)."""
    path = Path(path)
    if problem == TOKENS or is_token_file(path):
        return read_token_labelled(path, label_names, problem)
    fmt = file_format(path, fmt)
    if fmt == "lines":
        raise DataError(f"{path}: a .txt file holds unlabelled text; labelled data must be TSV, CSV or JSONL")
    columns, rows = _rows(path, fmt)
    if not rows:
        raise DataError(f"{path}: the file has a header but no rows")
    text_col, text_pair_col = text_columns(columns, text_column, text_pair_column, path)
    label_col = pick_column(columns, label_column, LABEL_COLUMNS, "label", path)
    texts, cells = [], []
    for number, row in rows:
        text, label = row.get(text_col), row.get(label_col)
        if text is None or (isinstance(text, str) and not text.strip()):
            raise DataError(f"{path}: row {number} has an empty {text_col!r}")
        if label is None or (not isinstance(label, list) and str(label).strip() == ""):
            raise DataError(f"{path}: row {number} has no {label_col!r}")
        texts.append(item_of(row, text_col, text_pair_col))
        cells.append(label)
    if problem is not None and problem not in PROBLEMS:
        raise DataError(f"unknown problem type {problem!r}; use one of {', '.join(PROBLEMS)}")
    why = "as asked"
    if problem is None:
        problem, why = detect_problem(cells)
    columns_read = (f"text columns {text_col!r} + {text_pair_col!r} (pairs)" if text_pair_col
                    else f"text column {text_col!r}")
    columns_read += f", label column {label_col!r} ({problem})"
    if problem == "regression":
        values = []
        for (number, _), cell in zip(rows, cells):
            if isinstance(cell, (list, bool)) or not _is_number(cell):
                raise DataError(f"{path}: row {number} has {label_col!r} = {cell!r}, not a number; a regression "
                                "target must be one (use --problem to read the labels as classes)")
            values.append(float(str(cell).strip()))
        return TextDataset(texts, values, [label_names[0] if label_names else label_col], str(path), columns_read,
                           problem, why)
    if problem == "multi-label":
        sets = [_cell_labels(cell) for cell in cells]
        names = list(label_names) if label_names is not None else _label_order([v for s in sets for v in s])
        index = _label_index(names, label_values)
        labels = []
        for (number, _), spelled in zip(rows, sets):
            unknown = [v for v in spelled if v not in index]
            if unknown:
                raise DataError(f"{path}: unknown label {unknown[0]!r} in row {number}; the training labels are: "
                                f"{', '.join(names)}")
            labels.append(sorted({index[v] for v in spelled}))
        return TextDataset(texts, labels, names, str(path), columns_read, problem, why)
    raw_labels = [normalize_label(cell) for cell in cells]
    names = list(label_names) if label_names is not None else _label_order(raw_labels)
    if label_names is None and len(names) < 2:
        raise DataError(f"{path}: only one label ({names[0]!r}) occurs; a classifier needs at least two")
    if label_names is None and not accept_labels:
        suspects = suspect_labels(Counter(raw_labels))
        if suspects:
            raise DataError(f"{path}: suspect labels (typos?): {'; '.join(suspects)}. Fix them in the file, or "
                            "give --accept-labels to train each as a class of its own")
    index = _label_index(names, label_values)
    labels = []
    for (number, _), label in zip(rows, raw_labels):
        if label not in index:
            known = ", ".join(names) + (f" (or {', '.join(label_values)})" if label_values else "")
            raise DataError(f"{path}: unknown label {label!r} in row {number}; the training labels are: {known}")
        labels.append(index[label])
    return TextDataset(texts, labels, names, str(path), columns_read, problem, why)


def suspect_labels(counts: Counter) -> list[str]:
    """Labels of a training file that look like typos, each said with its count: one seen once beside labels
    seen ten times or more, one equal to another up to case (the rarer spelling), a non-number among number
    labels."""
    def rows(label: str) -> str:
        return f"{label!r} ({counts[label]:,} row{'s' if counts[label] != 1 else ''})"

    out = []
    most = max(counts.values(), default=0)
    by_case: dict[str, list[str]] = {}
    for label in counts:
        by_case.setdefault(label.casefold(), []).append(label)
    for spellings in by_case.values():
        if len(spellings) > 1:
            main, *others = sorted(spellings, key=lambda v: -counts[v])
            out += [f"{rows(v)} differs only in case from {rows(main)}" for v in others]
    flagged = {v for spellings in by_case.values() if len(spellings) > 1 for v in spellings}
    numbers = [v for v in counts if _is_number(v)]
    if len(numbers) >= 2:
        out += [f"{rows(v)} is not a number beside {', '.join(map(repr, sorted(numbers)[:4]))}" for v in counts
                if not _is_number(v) and v not in flagged]
    if most >= 10:
        beside = max(counts, key=counts.get)
        out += [f"{rows(v)} beside {rows(beside)}" for v in sorted(counts) if counts[v] == 1 and v not in flagged
                and (len(numbers) < 2 or _is_number(v))]
    return out


def _label_index(names: list[str], label_values: list[str] | None) -> dict[str, int]:
    """Spelling -> class index: the names, and the data's own spellings of the same classes."""
    index = {name: i for i, name in enumerate(names)}
    index.update({normalize_label(v): i for i, v in enumerate(label_values or [])})
    return index


def label_names_option(value: str) -> list[str]:
    """--label-names: comma-separated names, or @FILE with one name a line (e.g. GoEmotions' labels.txt)."""
    if value.startswith("@"):
        file = Path(value[1:])
        if not file.is_file():
            raise DataError(f"--label-names {value}: no such file {file}")
        names = [line.strip() for line in _read_text(file).split("\n") if line.strip()]
    else:
        names = [n.strip() for n in value.split(",")]
    if not names or any(not n for n in names):
        raise DataError(f"--label-names {value!r} holds an empty name")
    if len(set(names)) != len(names):
        raise DataError(f"--label-names {value!r} names a label twice")
    return names


def read_unlabelled(path: str | os.PathLike, text_column: str | None = None, fmt: str | None = None,
                    text_pair_column: str | None = None) -> TextDataset:
    """Unlabelled text: one sentence a line (.txt), or the text column(s) of a labelled file (pairs too)."""
    path = Path(path)
    fmt = file_format(path, fmt)
    text_pair_col = None
    if fmt == "lines":
        if text_pair_column:
            raise DataError(f"{path}: a .txt file holds one text a line; pairs need a TSV, CSV or JSONL file")
        texts = [line.strip() for line in _read_text(path).split("\n") if line.strip()]
        col = "lines"
    else:
        columns, rows = _rows(path, fmt)
        col, text_pair_col = text_columns(columns, text_column, text_pair_column, path)
        texts = [item_of(row, col, text_pair_col) for _, row in rows if str(row.get(col, "")).strip()]
    if not texts:
        raise DataError(f"{path}: no text found")
    return TextDataset(texts, None, [], str(path), f"text columns {col!r} + {text_pair_col!r} (pairs)" if text_pair_col
                       else f"text column {col!r}")


def read_bundle_data(bundle, data: str | os.PathLike, text_column: str | None = None,
                     text_pair_column: str | None = None, label_column: str | None = None) -> TextDataset:
    """Labelled `data` read the way a bundle answers (a `runtime.EdgeModel` or its `Manifest`): its labels (and
    their spellings), its problem type, single texts or pairs. The columns default to those the bundle's run
    was trained with (manifest.source["columns"]); a file of the wrong shape is refused before any work, naming
    the file, its columns and the flag."""
    manifest = getattr(bundle, "manifest", bundle)
    given = {"text_column": text_column, "text_pair_column": text_pair_column, "label_column": label_column}
    columns = {**(manifest.source or {}).get("columns", {}), **{k: v for k, v in given.items() if v}}
    return read_for_task(data, manifest.task, columns)


def read_for_task(data: str | os.PathLike, task, columns: dict[str, str]) -> TextDataset:
    """Labelled `data` read for a task (runtime.task.Task: its labels and their spellings, its problem type)
    through `columns` (text_column / text_pair_column / label_column); a file of the wrong shape, pairs against
    single texts, is refused naming the file, its columns and the flag."""
    dataset = read_labelled(data, columns.get("text_column"), columns.get("label_column"), task.labels or None,
                            label_values=task.label_values, problem=task.problem,
                            text_pair_column=columns.get("text_pair_column"))
    if dataset.text_pair != task.text_pair:
        fix = ("name its one text column with --text-column" if dataset.text_pair else
               "name its second text column with --text-pair-column (and the first with --text-column)")
        raise DataError(f"{data}: the file holds {'pairs' if dataset.text_pair else 'single texts'} "
                        f"({dataset.columns}) but the bundle classifies "
                        f"{'text pairs' if task.text_pair else 'single texts'}; {fix}")
    return dataset
