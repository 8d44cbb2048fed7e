"""The reference for the Sigma matcher: pySigma's SQLite backend over the same rows in an in-memory table.

Rows are stored as Zircolite stores events: one ``TEXT COLLATE NOCASE`` column per field (absent fields
are NULL), the full text in ``_text`` for field-less keywords, and ``REGEXP`` registered as an RE2 search
(the backend's documented setup, with the regex dialect pySigma validates ``re`` leaves against).
:func:`disagreements` runs every rule both ways.
"""

from __future__ import annotations

import random
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import re2
from sigma.backends.sqlite import sqliteBackend
from sigma.conditions import ConditionFieldEqualsValueExpression, ConditionValueExpression
from sigma.types import (
    SigmaBool,
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

from processors.detect.sigma import FULLTEXT, CompiledRule
from processors.detect.sigma.prefilter import RuleIndex

Row = dict[str, str | None]


def _walk(tree: Any) -> Iterator[Any]:
    yield tree
    for arg in getattr(tree, "args", None) or ():
        yield from _walk(arg)


def leaves(rule: CompiledRule) -> list[tuple[str | None, Any]]:
    """``(lowercase field or None for keywords, value)`` of every leaf of the rule's conditions."""
    assert rule.sigma is not None
    found: list[tuple[str | None, Any]] = []
    for condition in rule.sigma.detection.parsed_condition:
        for node in _walk(condition.parsed):
            if isinstance(node, ConditionFieldEqualsValueExpression):
                found.append((node.field.lower(), node.value))
            elif isinstance(node, ConditionValueExpression):
                found.append((None, node.value))
    return found


def has_comparisons(rule: CompiledRule) -> bool:
    """Numeric comparisons: the reference compares text there (TEXT columns), the matcher numbers."""
    return any(isinstance(value, SigmaCompareExpression) for _, value in leaves(rule))


_FILLERS = ("", " ", "x", "-", "/", "É", "é", "\n", "%", "_", "\\", "ab c", "0", "ß", "İ")


def _flip_case(rng: random.Random, text: str) -> str:
    return "".join(c.swapcase() if rng.random() < 0.3 else c for c in text)


def sample(value: Any, rng: random.Random, regex_example: Any = None) -> str | None:
    """A text that matches ``value`` (None: the field absent), as pySigma's meaning of the leaf."""
    if isinstance(value, SigmaExpansion):
        return sample(rng.choice(value.values), rng, regex_example)
    if isinstance(value, SigmaString):
        out: list[str] = []
        for part in value.s:
            if isinstance(part, str):
                out.append(part)
            elif part is SpecialChars.WILDCARD_MULTI:
                out.append(rng.choice(_FILLERS))
            elif part is SpecialChars.WILDCARD_SINGLE:
                out.append(rng.choice("aZ9 /é"))
        text = "".join(out)
        return _flip_case(rng, text) if rng.random() < 0.5 else text
    if isinstance(value, SigmaRegularExpression):
        if regex_example is not None:
            return str(regex_example(value))
        return re.sub(r"[\\^$()\[\]{}+*?|]", "", str(value.regexp))
    if isinstance(value, SigmaCIDRExpression):
        network = value.network
        offset = rng.randrange(min(network.num_addresses, 1 << 16))
        return str(network.network_address + offset)
    if isinstance(value, SigmaBool):
        return rng.choice(("true", "TRUE", "1") if value.boolean else ("false", "False", "0"))
    if isinstance(value, SigmaNumber):
        return str(value.number)
    if isinstance(value, SigmaNull):
        return None
    if isinstance(value, SigmaExists):
        return "present" if value.exists else None
    if isinstance(value, SigmaCompareExpression):
        return str(value.number.number + rng.choice((-1, 0, 1)))
    raise AssertionError(f"no sample for {value!r}")


def mutate(text: str, rng: random.Random) -> str:
    """A near miss: one character dropped, added, changed or case-flipped, or the text cut or wrapped."""
    if not text:
        return rng.choice(("x", " "))
    pos = rng.randrange(len(text))
    kind = rng.randrange(7)
    if kind == 0:
        return text[:pos] + text[pos + 1 :]
    if kind == 1:
        return text[:pos] + rng.choice("xX/ É%_\\") + text[pos:]
    if kind == 2:
        return text[:pos] + chr(ord(text[pos]) ^ 1) + text[pos + 1 :]
    if kind == 3:
        return text.swapcase()
    if kind == 4:
        return text[:pos]
    if kind == 5:
        return rng.choice(("a", " ", "/")) + text + rng.choice(("z", " ", "/", "\n"))
    return text[pos:]


def rule_rows(rule: CompiledRule, rng: random.Random, count: int, regex_example: Any = None) -> list[Row]:
    """Rows built from the rule's own leaves: one that satisfies every positive leaf per field, and near misses."""
    by_field: dict[str | None, list[Any]] = {}
    for field, value in leaves(rule):
        by_field.setdefault(field, []).append(value)
    rows: list[Row] = []
    for index in range(count):
        row: Row = {}
        for field, values in by_field.items():
            key = FULLTEXT if field is None else field
            if rng.random() < 0.25:  # absent: lets negated filters and null leaves pass
                continue
            chosen = values if rng.random() < 0.7 else rng.sample(values, k=max(1, len(values) // 2))
            texts = [sample(value, rng, regex_example) for value in chosen]
            present = [text for text in texts if text is not None]
            if not present or (rng.random() < 0.1 and any(t is None for t in texts)):
                row[key] = None
                continue
            # equality leaves want the text alone; starts/ends/contains are satisfied by a concatenation
            text = rng.choice(present) if rng.random() < 0.4 else " ".join(present)
            if index % 3 == 2:
                text = mutate(text, rng)
            row[key] = text
        rows.append(row)
    return rows


def _table(source: str) -> str:
    return "t_" + re.sub(r"[^a-z0-9_]", "_", source)


_PATTERNS: dict[str, Any] = {}


def _regexp(pattern: str, value: Any) -> bool:
    # RE2, the dialect pySigma validates ``re`` leaves against by default. Python's ``re`` (the backend
    # README's example) differs from it on Unicode \s, \w, \d and on "$" before a final newline: engine
    # differences this comparison found, not compilation ones (docs/sigma.md).
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = _PATTERNS[pattern] = re2.compile(pattern)
    return value is not None and compiled.search(str(value)) is not None


_CONVERTED: dict[tuple[str, str], tuple[list[str], list[str]]] = {}


def reference_hits(rules: Sequence[CompiledRule], rows: Sequence[Row], source: str) -> dict[str, set[int]]:
    """Rule id → indexes of the rows the SQLite backend's query selects."""
    connection = sqlite3.connect(":memory:")
    connection.create_function("regexp", 2, _regexp, deterministic=True)
    backend = sqliteBackend(table=_table(source), fulltext_field=FULLTEXT)
    queries: dict[str, list[str]] = {}
    columns: set[str] = {FULLTEXT}
    for row in rows:
        columns.update(key for key in row if not key.startswith("\x00"))  # not the matcher's folded copies
    for rule in rules:
        assert rule.sigma is not None
        key = (rule.id, source)
        if key not in _CONVERTED:
            fields = [field.lower() for field in backend.required_fields(rule.sigma)]
            _CONVERTED[key] = (fields, backend.convert_rule(rule.sigma))
        fields, queries[rule.id] = _CONVERTED[key]
        columns.update(fields)
    ordered = sorted(columns)
    quoted = ", ".join(f'"{name}" TEXT COLLATE NOCASE' for name in ordered)
    connection.execute(f"CREATE TABLE {_table(source)} (row_index INTEGER, {quoted})")
    placeholders = ", ".join("?" for _ in range(len(ordered) + 1))
    connection.executemany(
        f"INSERT INTO {_table(source)} VALUES ({placeholders})",  # noqa: S608 - our own table name
        [(index, *(row.get(name) for name in ordered)) for index, row in enumerate(rows)],
    )
    hits: dict[str, set[int]] = {}
    for rule_id, rule_queries in queries.items():
        selected: set[int] = set()
        for query in rule_queries:
            selected.update(index for (index, *_rest) in connection.execute(query))
        hits[rule_id] = selected
    connection.close()
    return hits


def disagreements(rules: Sequence[CompiledRule], rows: Sequence[Row], source: str) -> list[tuple[str, int, bool, Row]]:
    """``(rule id, row index, matcher's answer, row)`` wherever the matcher and the reference differ.

    The matcher's answer is the engine's: a rule the prefilter does not name as a candidate does not match.
    """
    reference = reference_hits(rules, rows, source)
    index = RuleIndex(rule.requirement for rule in rules)
    candidates = [set(index.candidates(row)) for row in rows]
    found: list[tuple[str, int, bool, Row]] = []
    for position, rule in enumerate(rules):
        expected = reference[rule.id]
        for row_index, row in enumerate(rows):
            mine = position in candidates[row_index] and rule.predicate(row)
            if mine != (row_index in expected):
                found.append((rule.id, row_index, mine, row))
    return found


def by_source(rules: Iterable[CompiledRule]) -> dict[str, list[CompiledRule]]:
    grouped: dict[str, list[CompiledRule]] = {}
    for rule in rules:
        if not has_comparisons(rule):
            grouped.setdefault(rule.source, []).append(rule)
    return grouped


__all__ = ["by_source", "disagreements", "has_comparisons", "leaves", "mutate", "reference_hits", "rule_rows", "sample"]
