"""Input items parsed once (runtime/items.py): what classify, the CLI, serve and predict --file share."""

from __future__ import annotations

import pytest

from runtime.errors import InputError, InputTypeError
from runtime.items import items_from_arguments, items_from_lines, parse_items


def test_items_of_every_accepted_shape():
    assert parse_items("one", False) == ["one"] and parse_items(["a", "b"], False) == ["a", "b"]
    assert parse_items(("q", "p"), True) == [("q", "p")]  # one pair
    assert parse_items([("a", "b"), ["c", ""], {"text": "d", "text_pair": "e"}, {"text": "f"}], True) == \
        [("a", "b"), ("c", ""), ("d", "e"), ("f", "")]


@pytest.mark.parametrize("texts, pair, error, words", [
    ([("a", "b")], False, InputError, "texts[0] is a pair"),
    (["a"], True, InputError, "texts[0] is a single string"),
    ([{"txt": "a"}], True, InputTypeError, "texts[0] is a dict"),
    (["ok", 3], False, InputTypeError, "texts[1] is int"),
    (["ok", "\ud800"], False, InputError, "texts[1] holds a lone surrogate"),
    (None, False, InputTypeError, "texts must be a list"),
])
def test_a_wrong_item_is_refused_naming_its_index(texts, pair, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_items(texts, pair)


def test_arguments_pair_two_by_two_and_stdin_one_pair_a_line():
    assert items_from_arguments(["a", "b", "c", "d"], True) == [("a", "b"), ("c", "d")]
    assert items_from_arguments(["a\tb", "c\td"], True) == [("a", "b"), ("c", "d")]
    with pytest.raises(InputError, match="two by two"):
        items_from_arguments(["a", "b", "c"], True)
    assert items_from_lines(["a\tb", "", "c\td"], True) == [("a", "b"), ("", ""), ("c", "d")]
    with pytest.raises(InputError, match="stdin: line 2 has no tab"):
        items_from_lines(["a\tb", "no tab here", "c\td", "e\tf"], True)
    assert items_from_lines(["a", "", "b"], False) == ["a", "", "b"]  # blank lines kept: answers line up
