"""Which rules can match a row at all, decided by one RE2 set scan per field instead of every rule.

For every rule a *requirement* is derived from its condition: a set of ``(field, literal)`` and
``(field, regex)`` alternatives of which at least one must occur in the row for the rule to match. An
AND needs any one of its operands' requirements (the most selective is kept), an OR needs all of its
operands to have one (their union), a NOT or a leaf without a literal (``null``, ``exists``, booleans,
comparisons, ``?``-only patterns) has none. String leaves require their longest literal piece, folded as
the matcher folds (ASCII lowercase): a folded substring is necessary for a case-insensitive match and for a
``|cased`` one alike. ``re`` leaves require their own pattern, searched in the same RE2 dialect.

Per source and field, every literal goes into one ``RE2::Set`` over the folded text and every regex into
one over the text, so a row costs one scan per field that any requirement names; only the rules whose
requirement was met, and the rules without one, are evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import re2
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    SigmaCIDRExpression,
    SigmaExpansion,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
)

from processors.detect.sigma.matcher import FOLDED, FULLTEXT, fold

__all__ = ["Requirement", "RuleIndex", "record_types", "requirement"]

Requirement = frozenset[tuple[str, str, str]]
"""``(field, "lit" or "re", text)`` alternatives; None where a rule has no requirement."""

_SET_MAX_MEM = 64 << 20


def _longest_literal(value: SigmaString) -> str:
    best = ""
    current = ""
    for part in value.s:
        if isinstance(part, str):
            current += part
        else:
            best = max(best, current, key=len)
            current = ""
    return fold(max(best, current, key=len))


def _value_requirement(field: str, value: Any) -> Requirement | None:
    if isinstance(value, SigmaExpansion):
        parts = [_value_requirement(field, item) for item in value.values]
        if any(part is None for part in parts):
            return None
        return frozenset().union(*parts)  # type: ignore[arg-type]
    if isinstance(value, SigmaString):
        literal = _longest_literal(value)
        return frozenset({(field, "lit", literal)}) if literal else None
    if isinstance(value, SigmaRegularExpression):
        return frozenset({(field, "re", value.escape([], "", False, True))})
    if isinstance(value, SigmaNumber):
        return frozenset({(field, "lit", str(value.number))})
    if isinstance(value, SigmaCIDRExpression):
        parts = [_value_requirement(field, SigmaString(network)) for network in value.expand()]
        if any(part is None for part in parts):
            return None
        return frozenset().union(*parts)  # type: ignore[arg-type]
    return None


def _selectivity(req: Requirement) -> tuple[bool, bool, int, int]:
    # An audit record's type and one- or two-character literals say little (every EXECVE row has the type
    # EXECVE); then fewer alternatives, then longer literals, are more selective.
    shortest = min(len(text) for _, _, text in req)
    return (any(field == "type" for field, _, _ in req), shortest < 3, len(req), -shortest)


def requirement(tree: Any, only_field: str | None = None) -> Requirement | None:
    """The requirement of a parsed condition (None when it has none).

    ``only_field``: consider only leaves on this field (the others have no requirement).
    """
    if isinstance(tree, ConditionAND):
        found = [req for req in (requirement(arg, only_field) for arg in tree.args) if req is not None]
        return min(found, key=_selectivity) if found else None
    if isinstance(tree, ConditionOR):
        parts = [requirement(arg, only_field) for arg in tree.args]
        if not parts or any(part is None for part in parts):
            return None
        return frozenset().union(*parts)  # type: ignore[arg-type]
    if isinstance(tree, ConditionNOT):
        return None
    if isinstance(tree, ConditionFieldEqualsValueExpression):
        field = tree.field.lower()
        return _value_requirement(field, tree.value) if only_field in (None, field) else None
    if isinstance(tree, ConditionValueExpression):
        return _value_requirement(FULLTEXT, tree.value) if only_field in (None, FULLTEXT) else None
    return None


def record_types(trees: Iterable[Any]) -> frozenset[str] | None:
    """The folded literals one of which an auditd row's ``type`` must contain for any of ``trees`` (the
    conditions of the auditd rules) to match it; None when some condition does not constrain the type."""
    found: set[str] = set()
    for tree in trees:
        req = requirement(tree, only_field="type")
        if req is None or any(kind != "lit" for _, kind, _ in req):
            return None
        found.update(text for _, _, text in req)
    return frozenset(found)


class _FieldSets:
    """The literal and regex sets of one field, and which requirement each pattern stands for."""

    __slots__ = ("literal_owner", "literal_set", "regex_owner", "regex_set")

    def __init__(self, literals: Sequence[tuple[str, frozenset[int]]], regexes: Sequence[tuple[str, frozenset[int]]]):
        self.literal_set, self.literal_owner = _compile([(re2.escape(text), owners) for text, owners in literals])
        self.regex_set, self.regex_owner = _compile(list(regexes))


def _compile(patterns: Sequence[tuple[str, frozenset[int]]]) -> tuple[Any, tuple[frozenset[int], ...]]:
    if not patterns:
        return None, ()
    options = re2.Options()
    options.max_mem = _SET_MAX_MEM
    options.log_errors = False
    pattern_set = re2.Set.SearchSet(options)
    owners: list[frozenset[int]] = []
    for pattern, owner in patterns:
        pattern_set.Add(pattern)
        owners.append(owner)
    pattern_set.Compile()
    return pattern_set._set, tuple(owners)


class RuleIndex:
    """The rules of one source with their requirements, for :meth:`candidates`.

    Args:
        requirements: per rule (in order), its requirement or None.
    """

    def __init__(self, requirements: Iterable[Requirement | None]) -> None:
        reqs = list(requirements)
        self.always: frozenset[int] = frozenset(i for i, req in enumerate(reqs) if req is None)
        literals: dict[str, dict[str, set[int]]] = {}
        regexes: dict[str, dict[str, set[int]]] = {}
        for index, req in enumerate(reqs):
            for field, kind, text in req or ():
                table = literals if kind == "lit" else regexes
                table.setdefault(field, {}).setdefault(text, set()).add(index)
        fields = sorted(set(literals) | set(regexes))
        self.fields: tuple[tuple[str, str, _FieldSets], ...] = tuple(
            (
                field,
                FOLDED + field,
                _FieldSets(
                    [(text, frozenset(owners)) for text, owners in literals.get(field, {}).items()],
                    [(text, frozenset(owners)) for text, owners in regexes.get(field, {}).items()],
                ),
            )
            for field in fields
        )
        self.count = len(reqs)

    def candidates(self, row: dict[str, str | None]) -> list[int]:
        """The indexes (ascending) of the rules that can match ``row``.

        The folded text of a scanned field is left in the row for the rules' leaves (:data:`FOLDED`).
        """
        found: set[int] = set(self.always)
        get = row.get
        for field, folded_key, sets in self.fields:
            text = get(field)
            if text is None:
                continue
            if sets.literal_set is not None:
                folded = get(folded_key)
                if folded is None:
                    folded = row[folded_key] = fold(text)
                hits = sets.literal_set.Match(folded.encode("utf-8", "surrogatepass"))
                if hits:
                    owners = sets.literal_owner
                    for hit in hits:
                        found.update(owners[hit])
            if sets.regex_set is not None:
                hits = sets.regex_set.Match(text.encode("utf-8", "surrogatepass"))
                if hits:
                    owners = sets.regex_owner
                    for hit in hits:
                        found.update(owners[hit])
        return sorted(found) if len(found) > 1 else list(found)
