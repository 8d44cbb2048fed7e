"""Sigma detections compiled into plain Python predicates over a flat row (one view of a document).

pySigma parses a rule and resolves its condition into a tree of AND/OR/NOT over leaves
(``field = value`` and field-less keywords) with every modifier already applied (``contains`` and
``base64offset`` are wildcards and expansions by then). This module turns that tree into closures,
each leaf precompiled for its value kind, so evaluating a rule is a few calls and string operations.

The meaning of each leaf is the one of pySigma's SQLite backend over a table whose columns are
``TEXT COLLATE NOCASE`` (Zircolite's layout), which the differential tests use as the reference:

* strings compare case-insensitively for ASCII letters only (SQLite's ``NOCASE`` and ``LIKE``);
  ``*`` and ``?`` match any run of characters and exactly one character; ``|cased`` is
  case-sensitive (``GLOB``);
* a leaf on a field the row does not carry is false, also under ``not`` (the backend wraps every
  ``NOT`` in ``COALESCE(..., 0)``), except ``field: null`` and ``|exists: false``;
* numbers and booleans compare with their text (``5`` is ``'5'``; ``true`` is ``'true'`` or ``'1'``);
* ``|re`` is searched unanchored with RE2 (linear time on attacker-controlled text), flags as ``(?i)``,
  ``(?m)``, ``(?s)`` prefixes;
* ``|cidr`` matches the address prefixes pySigma expands the network to (exact for the dotted-quad and
  canonical IPv6 spellings secstream's documents carry);
* field-less keywords search the row's full text (:data:`FULLTEXT`) as ``contains``;
* ``|lt``, ``|lte``, ``|gt``, ``|gte`` compare numerically where the field's text is a number (and are false
  otherwise); the SQLite reference compares text there, so these leaves are tested on their own.

Field names are matched case-insensitively (SQLite column names are): rows are keyed by lowercase names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import re2
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SpecialChars,
)

__all__ = ["FOLDED", "FULLTEXT", "Predicate", "Row", "UnsupportedRule", "compile_condition", "fold"]

FULLTEXT = "_text"
"""The row key holding the text field-less keywords are searched in."""

Row = dict[str, str | None]
Predicate = Callable[[Row], bool]
_ValueTest = Callable[[str], bool]

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class UnsupportedRule(ValueError):
    """A rule uses a Sigma feature secstream does not evaluate (the message says which)."""


def fold(text: str) -> str:
    """Lowercase ASCII letters only, as SQLite's ``NOCASE`` collation and ``LIKE`` do."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _re2(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 8 << 20
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        raise UnsupportedRule(f"regular expression {pattern!r} is not RE2 syntax: {error}") from None


def _glob_test(parts: Sequence[Any], cased: bool, prefolded: bool = False) -> _ValueTest:
    """A test for a Sigma string with wildcards: equality, prefix, suffix, substring or a DFA match.

    ``prefolded``: the tested text is already folded (the pattern is folded all the same).
    """
    norm: Callable[[str], str] = str if cased else fold
    apply: Callable[[str], str] = str if cased or prefolded else fold
    pieces: list[str | SpecialChars] = []
    for part in parts:
        if isinstance(part, str):
            if pieces and isinstance(pieces[-1], str):
                pieces[-1] += norm(part)
            else:
                pieces.append(norm(part))
        elif part in (SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE):
            if part is SpecialChars.WILDCARD_MULTI and pieces and pieces[-1] is SpecialChars.WILDCARD_MULTI:
                continue
            pieces.append(part)
        else:
            raise UnsupportedRule(f"placeholders are not supported ({part!r})")
    star = SpecialChars.WILDCARD_MULTI
    literal = [p for p in pieces if isinstance(p, str)]
    if SpecialChars.WILDCARD_SINGLE not in pieces:
        if not pieces:
            return lambda value: value == ""
        if pieces == [star]:
            return lambda value: True
        if len(literal) == 1:
            text = literal[0]
            if apply is str:
                if len(pieces) == 1:
                    return lambda value: value == text
                if pieces == [star, text, star]:
                    return lambda value: text in value
                if pieces == [text, star]:
                    return lambda value: value.startswith(text)
                if pieces == [star, text]:
                    return lambda value: value.endswith(text)
            if len(pieces) == 1:
                return lambda value: apply(value) == text
            if pieces == [star, text, star]:
                return lambda value: text in apply(value)
            if pieces == [text, star]:
                return lambda value: apply(value).startswith(text)
            if pieces == [star, text]:
                return lambda value: apply(value).endswith(text)
    regex = ["(?s)^"]
    for piece in pieces:
        if piece is star:
            regex.append(".*")
        elif piece is SpecialChars.WILDCARD_SINGLE:
            regex.append(".")
        else:
            regex.append(re2.escape(piece))
    regex.append("$")
    compiled = _re2("".join(regex))
    search = compiled.search
    if apply is str:
        return lambda value: search(value) is not None
    return lambda value: search(apply(value)) is not None


def _string_test(value: SigmaString) -> _ValueTest:
    return _glob_test(value.s, cased=isinstance(value, SigmaCasedString))


def _number_text(number: int | float) -> str:
    # SQLite gives the literal the column's TEXT affinity: 5 is '5', 1.5 is '1.5', 2.0 is '2.0'.
    return str(number)


def _compare_test(value: SigmaCompareExpression) -> _ValueTest:
    bound = float(value.number.number)
    op = value.op
    ops = SigmaCompareExpression.CompareOperators
    compare: Callable[[float], bool] = {
        ops.LT: lambda x: x < bound,
        ops.LTE: lambda x: x <= bound,
        ops.GT: lambda x: x > bound,
        ops.GTE: lambda x: x >= bound,
    }[op]

    def test(text: str) -> bool:
        try:
            number = float(text)
        except ValueError:
            return False
        return not math.isnan(number) and compare(number)

    return test


def _value_test(value: Any, keyword: bool) -> _ValueTest:
    """The test of one leaf value against a present field (or, for ``keyword``, the full text)."""
    if isinstance(value, SigmaExpansion):
        tests = [_value_test(item, keyword) for item in value.values]
        return lambda text: any(test(text) for test in tests)
    if isinstance(value, SigmaString):
        if keyword:
            star = SpecialChars.WILDCARD_MULTI
            return _glob_test([star, *value.s, star], cased=isinstance(value, SigmaCasedString))
        return _string_test(value)
    if isinstance(value, SigmaRegularExpression):
        search = _re2(value.escape([], "", False, True)).search
        return lambda text: search(text) is not None
    if isinstance(value, SigmaCompareExpression):
        if keyword:
            raise UnsupportedRule("a numeric comparison needs a field")
        return _compare_test(value)
    if isinstance(value, SigmaBool):
        accepted = ("true", "1") if value.boolean else ("false", "0")
        return lambda text: fold(text) in accepted
    if isinstance(value, SigmaNumber):
        number = _number_text(value.number)
        if keyword:
            return lambda text: number in text
        return lambda text: text == number
    if isinstance(value, SigmaCIDRExpression):
        tests = [_glob_test(SigmaString(network).s, cased=False) for network in value.expand()]
        return lambda text: any(test(text) for test in tests)
    raise UnsupportedRule(f"value type {type(value).__name__} is not supported")


def _leaf(field: str | None, value: Any) -> Predicate:
    if field is None:
        test = _value_test(value, keyword=True)
        return lambda row: (text := row.get(FULLTEXT)) is not None and test(text)
    name = field.lower()
    if isinstance(value, SigmaNull):
        return lambda row: row.get(name) is None
    if isinstance(value, SigmaExists):
        if value.exists:
            return lambda row: row.get(name) is not None
        return lambda row: row.get(name) is None
    folded_test = _folded_test(value)
    if folded_test is not None:
        key = FOLDED + name

        def folded_predicate(row: Row) -> bool:
            folded = row.get(key)
            if folded is None:
                text = row.get(name)
                if text is None:
                    return False
                folded = row[key] = fold(text)
            return folded_test(folded)

        return folded_predicate
    test = _value_test(value, keyword=False)

    def predicate(row: Row) -> bool:
        text = row.get(name)
        return text is not None and test(text)

    return predicate


FOLDED = "\x00folded:"
"""Row key prefix under which a field's folded text is kept once a leaf has folded it (rows are per event)."""


def _folded_test(value: Any) -> _ValueTest | None:
    """For case-insensitive string leaves (and expansions of them): a test on the already-folded text."""
    if isinstance(value, SigmaExpansion):
        tests = [_folded_test(item) for item in value.values]
        if any(test is None for test in tests):
            return None
        tested = tuple(tests)
        return lambda text: any(test(text) for test in tested)  # type: ignore[misc]
    if isinstance(value, SigmaString) and not isinstance(value, SigmaCasedString):
        return _glob_test(value.s, cased=False, prefolded=True)
    return None


def compile_condition(tree: ConditionItem | Any) -> Predicate:
    """Compile a parsed Sigma condition (``SigmaCondition.parsed``) into a predicate over a row.

    Raises:
        UnsupportedRule: the condition uses a value kind or modifier secstream does not evaluate.
    """
    if isinstance(tree, ConditionAND):
        parts = tuple(compile_condition(arg) for arg in tree.args)
        if len(parts) == 2:
            first, second = parts
            return lambda row: first(row) and second(row)
        return lambda row: all(part(row) for part in parts)
    if isinstance(tree, ConditionOR):
        parts = tuple(compile_condition(arg) for arg in tree.args)
        if len(parts) == 2:
            first, second = parts
            return lambda row: first(row) or second(row)
        return lambda row: any(part(row) for part in parts)
    if isinstance(tree, ConditionNOT):
        inner = compile_condition(tree.args[0])
        return lambda row: not inner(row)
    if isinstance(tree, ConditionFieldEqualsValueExpression):
        return _leaf(tree.field, tree.value)
    if isinstance(tree, ConditionValueExpression):
        return _leaf(None, tree.value)
    raise UnsupportedRule(f"condition element {type(tree).__name__} is not supported")
