"""The output codecs: sorted keys, and documents with non-text keys."""

from __future__ import annotations

import pytest

from schemas.codecs import dumps, dumps_line, loads


def test_keys_are_sorted_at_every_level() -> None:
    assert dumps({"b": 1, "a": {"d": 2, "c": [{"f": 3, "e": 4}]}}) == b'{"a":{"c":[{"e":4,"f":3}],"d":2},"b":1}'


def test_non_text_keys_are_written_as_text() -> None:
    """A document with an integer key still serialises (through the slower option), sorted as text."""
    assert dumps({"x": {10: "a", 9: "b"}}) == b'{"x":{"10":"a","9":"b"}}'
    assert dumps_line({2: None}) == b'{"2":null}\n'


def test_unserialisable_values_still_fail() -> None:
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_round_trip() -> None:
    doc = {"host": {"name": "h"}, "n": [1, 2.5, None, True]}
    assert loads(dumps(doc)) == doc
    assert dumps_line(doc) == dumps(doc) + b"\n"
