"""An input item parsed once, in one torch-free place: `classify` (Python), `edgekd predict` (arguments and
stdin), `edgekd serve` and `predict --file` all turn what they were given into the items a bundle takes here:
a text (`str`), or for a bundle of text pairs `(text, text_pair)` (from a tuple, a list of two strings, or
`{"text": ..., "text_pair": ...}`; an empty second text is a valid pair)."""

from __future__ import annotations

from runtime.errors import InputError, InputTypeError


def check_encodable(index: int, *texts: str) -> None:
    """Refuse item `index` when a text holds a lone surrogate (what a wrong decode leaves): no tokenizer reads it."""
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"texts[{index}] holds a lone surrogate (invalid UTF-16 such as '\\ud800'), which no "
                             "tokenizer can read; decode the text correctly, or encode it with errors='replace' "
                             "first") from None


def parse_items(texts, text_pair: bool) -> list:
    """`texts` as a list of what this bundle takes (str, or (text, text_pair) tuples); an item of the
    wrong shape is refused in one line that names its index and what the bundle expects."""
    one_pair = text_pair and isinstance(texts, tuple) and len(texts) == 2 and all(isinstance(t, str)
                                                                                  for t in texts)
    if isinstance(texts, (str, dict)) or one_pair:
        texts = [texts]  # one item; any other tuple is a sequence of items, as before pairs existed
    if texts is None or not hasattr(texts, "__iter__"):
        raise InputTypeError(f"texts must be a list of items (or one item), got {type(texts).__name__}")
    out = []
    for index, item in enumerate(texts):
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"text", "text_pair"})
            if unknown or "text" not in item:
                raise InputTypeError(f"texts[{index}] is a dict with keys {sorted(item)}; a pair is "
                                     "{'text': ..., 'text_pair': ...}")
            item = (item["text"], item.get("text_pair", ""))
        if isinstance(item, (tuple, list)):
            if len(item) != 2 or not all(isinstance(t, str) for t in item):
                raise InputTypeError(f"texts[{index}] is a {type(item).__name__} of {len(item)} items; a pair "
                                     "is (text, text_pair), two strings")
            if not text_pair:
                raise InputError(f"texts[{index}] is a pair, but this bundle classifies single texts: give "
                                 "each item as one string")
            check_encodable(index, *item)
            out.append((item[0], item[1]))
        elif isinstance(item, str):
            check_encodable(index, item)
            if text_pair:
                raise InputError(f"texts[{index}] is a single string, but this bundle classifies text pairs: "
                                 "give (text, text_pair) (the second may be empty)")
            out.append(item)
        else:
            raise InputTypeError(f"texts[{index}] is {type(item).__name__}, not " +
                                 ("a (text, text_pair) pair" if text_pair else "str"))
    return out


def items_from_arguments(texts: list[str], text_pair: bool) -> list:
    """Texts given as command-line arguments: one item each, or for a pair bundle the texts two by two (first,
    second, first, second, ...), or each argument 'text<TAB>text_pair' when every one holds a tab."""
    if not text_pair:
        return list(texts)
    if texts and all("\t" in t for t in texts):
        return [tuple(t.split("\t", 1)) for t in texts]
    if len(texts) % 2:
        raise InputError(f"this bundle classifies text pairs: give the texts two by two (got {len(texts)}), or "
                         "lines 'text<TAB>text_pair' on stdin")
    return list(zip(texts[::2], texts[1::2]))


def items_from_lines(lines: list[str], text_pair: bool) -> list:
    """Lines of standard input, one item a line, blank lines kept (as empty texts, so the answers line up with
    the input); for a pair bundle each line holds the two texts separated by a tab, and a line without a tab is
    refused naming it."""
    if not text_pair:
        return list(lines)
    out = []
    for number, line in enumerate(lines, start=1):
        if "\t" not in line:
            if not line.strip():
                out.append(("", ""))
                continue
            raise InputError(f"stdin: line {number} has no tab; this bundle classifies text pairs, one pair a line "
                             "as 'text<TAB>text_pair'")
        first, second = line.split("\t", 1)
        out.append((first, second))
    return out
