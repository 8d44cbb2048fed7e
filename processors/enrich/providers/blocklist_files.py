"""Reading blocklist files: CSV with the column names people use, plain lists and STIX 2.1 bundles.

* **CSV**: a header naming the indicator column as ``ioc``, ``indicator``, ``value`` or ``observable``;
  optionally its type (``ioc_type``, ``type``, ``indicator_type``: our IoC type names, STIX/ECS names
  such as ``ipv4-addr`` or ``domain-name``, or plain words such as ``ip``, ``domain``, ``sha256``),
  ``severity``, ``description``, ``source`` and ``tags`` (``;``-separated).
* **Plain text**: one indicator per line; ``#`` starts a comment.
* **STIX 2.1** (a ``.json`` file, or text starting with ``{``): a bundle of ``indicator`` objects (or
  one indicator, or a list of them) whose ``stix`` pattern is a simple equality, or an ``OR`` of
  equalities: ``[ipv4-addr:value = '203.0.113.5']``, ``[domain-name:value = 'evil.example']``,
  ``[url:value = '...']``, ``[file:hashes.'SHA-256' = '...']`` (also ``SHA-1``, ``MD5``) and IPv6.
  Any other pattern (``AND``, other operators, other objects) is skipped and counted: a feed mixes them.

Anything else is a :class:`~processors.errors.ConfigError`: one line naming the file and, where there is
one, the line or object.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from processors.errors import ConfigError

__all__ = ["ListedIndicator", "read_blocklist_file"]

VALUE_COLUMNS = ("ioc", "indicator", "value", "observable")
TYPE_COLUMNS = ("ioc_type", "type", "indicator_type")

#: Type names found in blocklists → our IoC types.
_TYPE_NAMES = {
    **{name: name for name in ("ipv4", "ipv6", "dns", "hostname", "url", "md5_hash", "sha1_hash", "sha256_hash")},
    "file_hash": "file_hash",
    "ip": None,  # IPv4 or IPv6: decided from the value
    "ipv4-addr": "ipv4",
    "ipv6-addr": "ipv6",
    "domain-name": "dns",
    "domain": "dns",
    "fqdn": "dns",
    "uri": "url",
    "md5": "md5_hash",
    "sha1": "sha1_hash",
    "sha-1": "sha1_hash",
    "sha256": "sha256_hash",
    "sha-256": "sha256_hash",
    "hash": None,
    "file": None,
}
_HASH_KEYS = {
    "sha-256": "sha256_hash",
    "sha256": "sha256_hash",
    "sha-1": "sha1_hash",
    "sha1": "sha1_hash",
    "md5": "md5_hash",
}
_STIX_OBJECTS = {"ipv4-addr:value": "ipv4", "ipv6-addr:value": "ipv6", "domain-name:value": "dns", "url:value": "url"}
_COMPARISON = re.compile(r"\s*(?P<path>[a-z0-9-]+:[A-Za-z0-9_.'-]+)\s*=\s*'(?P<value>(?:[^'\\]|\\.)*)'\s*")
_OBSERVATION = re.compile(r"\[([^\[\]]*)\]")
_OBSERVATIONS = re.compile(r"\s*\[[^\[\]]*\](?:\s+OR\s+\[[^\[\]]*\])*\s*")


@dataclass(frozen=True, slots=True)
class ListedIndicator:
    """One indicator as read from a file (types and severities not yet checked)."""

    ioc: str
    ioc_type: str | None
    where: str
    severity: str | None = None
    description: str = ""
    source: str = ""
    tags: tuple[str, ...] = field(default=())


@dataclass(slots=True)
class BlocklistFile:
    """What a file held: its indicators and how many STIX patterns were skipped as unsupported."""

    indicators: list[ListedIndicator] = field(default_factory=list)
    skipped_patterns: int = 0


def read_blocklist_file(path: Path) -> BlocklistFile:
    """Read one blocklist file (CSV, plain text or STIX 2.1 JSON).

    Raises:
        ConfigError: the file cannot be read, is not UTF-8, or is not a blocklist in one of the formats.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise ConfigError(f"cannot read blocklist: {err.strerror}", key=str(path)) from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"blocklist is not UTF-8 text (byte {err.start})", key=str(path)) from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
        return _read_stix(text, path)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not _comment(line)]
    if not lines:
        return BlocklistFile()
    header = [name.strip().lower() for name in next(csv.reader([lines[0][1]]))]
    if any(name in VALUE_COLUMNS for name in header):
        return _read_csv(lines, header, path)
    if path.suffix.lower() == ".csv" or len(header) > 1:
        raise ConfigError(
            f"blocklist CSV header has no indicator column (one of {', '.join(VALUE_COLUMNS)}); "
            f"found: {', '.join(header)}",
            key=str(path),
        )
    return BlocklistFile([ListedIndicator(line.strip(), None, f"line {n}", source=path.name) for n, line in lines])


def _comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _read_csv(lines: list[tuple[int, str]], header: list[str], path: Path) -> BlocklistFile:
    value_column = next(name for name in VALUE_COLUMNS if name in header)
    type_column = next((name for name in TYPE_COLUMNS if name in header), None)
    found = BlocklistFile()
    try:
        rows = list(csv.reader([line for _, line in lines[1:]]))
    except csv.Error as err:
        raise ConfigError(f"blocklist CSV is malformed: {err}", key=str(path)) from None
    for (number, _), cells in zip(lines[1:], rows, strict=True):
        row = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
        value = row.get(value_column, "")
        if not value:
            continue
        found.indicators.append(
            ListedIndicator(
                value,
                _ioc_type(row.get(type_column or "", ""), f"line {number}", path),
                f"line {number}",
                severity=row.get("severity") or None,
                description=row.get("description", ""),
                source=row.get("source") or path.name,
                tags=tuple(t.strip() for t in row.get("tags", "").split(";") if t.strip()),
            )
        )
    return found


def _ioc_type(name: str, where: str, path: Path) -> str | None:
    key = name.strip().lower()
    if not key:
        return None
    if key not in _TYPE_NAMES:
        known = ", ".join(sorted(_TYPE_NAMES))
        raise ConfigError(f"{where}: unknown indicator type {name!r} (known: {known})", key=str(path))
    return _TYPE_NAMES[key]


# -- STIX 2.1 ------------------------------------------------------------------------------------------


def _read_stix(text: str, path: Path) -> BlocklistFile:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise ConfigError(f"blocklist is not valid JSON: {err}", key=str(path)) from None
    if isinstance(data, dict) and data.get("type") == "bundle":
        objects = data.get("objects")
    elif isinstance(data, dict) and data.get("type") == "indicator":
        objects = [data]
    else:
        objects = data
    if not isinstance(objects, list):
        raise ConfigError("a JSON blocklist must be a STIX 2.1 bundle or a list of indicators", key=str(path))
    found = BlocklistFile()
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict) or obj.get("type") != "indicator":
            continue
        if obj.get("pattern_type", "stix") != "stix" or obj.get("revoked") is True:
            found.skipped_patterns += 1
            continue
        where = f"object {index} ({str(obj.get('id', ''))[:80]})"
        comparisons = _simple_pattern(obj.get("pattern"))
        if comparisons is None:
            found.skipped_patterns += 1
            continue
        for ioc_type, value in comparisons:
            found.indicators.append(
                ListedIndicator(
                    value,
                    ioc_type,
                    where,
                    severity=_severity_from_confidence(obj.get("confidence")),
                    description=str(obj.get("description") or obj.get("name") or "")[:1024],
                    source=path.name,
                    tags=tuple(str(t) for t in [*(obj.get("indicator_types") or []), *(obj.get("labels") or [])]),
                )
            )
    return found


def _simple_pattern(pattern: Any) -> list[tuple[str, str]] | None:
    """The (IoC type, value) pairs of an ``OR`` of equality comparisons; None for any other pattern."""
    if not isinstance(pattern, str):
        return None
    if _OBSERVATIONS.fullmatch(pattern) is None:
        return None
    pairs: list[tuple[str, str]] = []
    for body in _OBSERVATION.findall(pattern):
        for comparison in re.split(r"\s+OR\s+", body):
            found = _COMPARISON.fullmatch(comparison)
            if found is None:
                return None
            ioc_type = _stix_type(found.group("path"))
            if ioc_type is None:
                return None
            pairs.append((ioc_type, re.sub(r"\\(.)", r"\1", found.group("value"))))
    return pairs


def _stix_type(object_path: str) -> str | None:
    if object_path in _STIX_OBJECTS:
        return _STIX_OBJECTS[object_path]
    if object_path.startswith("file:hashes."):
        return _HASH_KEYS.get(object_path.removeprefix("file:hashes.").strip("'").lower())
    return None


def _severity_from_confidence(confidence: Any) -> str | None:
    """STIX confidence (0-100) → severity: 70 and more high, 30 and more warning, else information."""
    if not isinstance(confidence, int) or isinstance(confidence, bool):
        return None
    if confidence >= 70:
        return "high"
    return "warning" if confidence >= 30 else "information"
