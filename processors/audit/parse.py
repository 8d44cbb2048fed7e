"""Parse one raw Linux audit line into an :class:`AuditRecord`.

Accepted shapes::

    [node=HOST ]type=TYPE msg=audit(TIME:SERIAL): key=value key="quoted value" key=HEX ...[\\x1dKEY="translated" ...]

* ``node=HOST`` is optional (auditd ``name_format``).
* The ENRICHED log format appends a group separator (``\\x1d``) and upper-case translated fields
  (``UID="root" AUID="alice"``); they go to :attr:`AuditRecord.enriched`.
* Values may be double-quoted (may contain spaces), unquoted, or hex-encoded (unquoted); quotes are removed
  and the keys whose value was quoted are kept in :attr:`AuditRecord.quoted` so that the decoder can tell an
  argument ``"ABCD"`` from the hex encoding ``ABCD``.
* The nested ``msg='op=... acct="root" exe=... res=success'`` of user-space records is parsed into proper
  fields (no stray quotes); ``msg`` keeps the inner text. A nested key that clashes with an outer key is stored
  as ``msg.<key>``.
* ``(null)`` and ``?`` are kept verbatim here; the decoder treats them as absent.

The header rule (and the range of its numbers) is :mod:`processors.audit.header`'s. Anything else raises
:class:`ParseError` carrying the original line and a clear reason.

The lines auditd writes (ASCII, values without spaces, at most one nested ``msg='...'``) are split by the
compiled tokenizer ``secstream_audit_native`` (``processors/audit/native-rs``, Rust), several times faster than
the regular expressions below. It answers only when its answer is exact and returns None otherwise; the
Python code here defines the result and handles every other line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from secstream_audit_native import RecordTokenizer

from processors.audit.header import TEXT_HEADER, header_problem
from processors.errors import ParseError

__all__ = ["AuditRecord", "parse_line"]

# key=value tokens. A value is double-quoted (may hold spaces) or bare. A single quote ends a bare value and
# cannot start a key, so one pass over ``msg='op=... acct="root" res=success'`` yields the nested fields
# directly, without stray quotes (``msg`` itself comes out empty and is filled from _NESTED).
_TOKEN: Final = re.compile(r"""([^\s='"]+)=("[^"]*"|[^\s"']*)""")
_NESTED: Final = re.compile(r"""(?<![^\s])([^\s='"]+)='([^']*)'""")
_NO_QUOTED: Final[frozenset[str]] = frozenset()
_GS: Final = "\x1d"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One raw audit record.

    Attributes:
        node: the ``node=`` prefix, or None.
        rtype: the record type (``SYSCALL``, ``USER_AUTH``, ...).
        time: the event time exactly as written (``"1551487424.869"``).
        serial: the event serial number.
        epoch: ``time`` as float seconds.
        fields: raw field values, quotes removed, nested ``msg='...'`` parsed into fields.
        enriched: the translated fields after ``\\x1d`` (ENRICHED format), quotes removed.
        raw: the original line (without the trailing newline).
        quoted: the keys of ``fields`` whose value was double-quoted (hence never hex-encoded).
    """

    node: str | None
    rtype: str
    time: str
    serial: int
    epoch: float
    fields: dict[str, str]
    enriched: dict[str, str]
    raw: str
    quoted: frozenset[str] = field(default=_NO_QUOTED)


_new_object = object.__new__
# Slot setters: building the frozen dataclass through them skips its slow ``__init__`` on the hot path.
(_set_node, _set_rtype, _set_time, _set_serial, _set_epoch, _set_fields, _set_enriched, _set_raw, _set_quoted) = (
    getattr(AuditRecord, name).__set__
    for name in ("node", "rtype", "time", "serial", "epoch", "fields", "enriched", "raw", "quoted")
)
#: The compiled tokenizer: a line's record (its slots set in Rust, likewise without ``__init__``), or None.
_tokenize: Final = RecordTokenizer(AuditRecord, _NO_QUOTED)


def _key_before(body: str, end: int) -> str:
    """Return the key that ends at ``end``: the text back to the previous whitespace (any, not just spaces)."""
    start = end
    while start > 0 and not body[start - 1].isspace():
        start -= 1
    return body[start:end]


def _unquote(body: str, fields: dict[str, str]) -> list[str]:
    """Replace the double-quoted values of ``fields`` by their text without quotes; return the quoted keys.

    Quoted values cannot hold a double quote (the kernel and libaudit hex-encode such values), so each
    ``="`` opens a value that runs to the next ``"``; walking them with ``str.find`` is much cheaper than
    looking at every token.
    """
    quoted: list[str] = []
    find = body.find
    start = find('="')
    while start >= 0:
        end = find('"', start + 2)
        if end < 0:
            break
        key = _key_before(body, start)
        if "'" in key:
            key = key[key.rfind("'") + 1 :]
        if key in fields:
            fields[key] = body[start + 2 : end]
            quoted.append(key)
        start = find('="', end + 1)
    return quoted


def _flat_pairs(body: str) -> tuple[dict[str, str], list[str]]:
    """Split ``k=v`` text into fields (double quotes removed) and the list of double-quoted keys."""
    fields = dict(_TOKEN.findall(body))
    return fields, (_unquote(body, fields) if '"' in body else [])


def _parse_pairs(body: str) -> tuple[dict[str, str], list[str]]:
    """Split a record body into fields, parsing nested ``key='k=v ...'`` values into fields of their own."""
    tokens = _TOKEN.findall(body)
    fields = dict(tokens)
    quoted = _unquote(body, fields) if '"' in body else []
    if "='" not in body:
        return fields, quoted
    if len(fields) == len(tokens):
        start = body.find("='")
        while start >= 0:
            end = body.find("'", start + 2)
            if end < 0:
                break
            fields[_key_before(body, start)] = body[start + 2 : end]
            start = body.find("='", end + 1)
        return fields, quoted
    # A nested key clashes with an outer one: parse the outer text first, then add the nested
    # fields, prefixing the clashing ones with ``<outer key>.``.
    nested = _NESTED.findall(body)
    outer, quoted = _flat_pairs(_NESTED.sub(lambda m: f"{m.group(1)}=''", body))
    for key, inner in nested:
        outer[key] = inner
        inner_fields, inner_quoted = _flat_pairs(inner)
        for nkey, nvalue in inner_fields.items():
            target = nkey if nkey not in outer else f"{key}.{nkey}"
            outer[target] = nvalue
            if nkey in inner_quoted:
                quoted.append(target)
    return outer, quoted


def parse_line(line: str) -> AuditRecord:
    """Parse one raw audit line.

    Args:
        line: the text of one record; a trailing newline is ignored.

    Returns:
        The parsed record.

    Raises:
        ParseError: the line is not an audit record (``raw`` holds the original text).
    """
    record = _tokenize(line)
    if record is not None:
        # The compiled tokenizer answered (it does only when its answer is exact; see native-rs).
        return record
    return _parse_python(line)


def _parse_python(line: str) -> AuditRecord:
    """The parser that defines the result: every line the compiled tokenizer declines comes here."""
    text = line.rstrip("\r\n")
    gs = text.find(_GS)
    if gs >= 0:
        main, extra = text[:gs], text[gs + 1 :]
    else:
        main, extra = text, ""
    match = TEXT_HEADER.match(main)
    if match is None:
        if not text.strip():
            reason = "empty line"
        elif "type=" not in main:
            reason = "not an audit record: no 'type=' field"
        elif "msg=audit(" not in main:
            reason = "not an audit record: no 'msg=audit(TIME:SERIAL)' header"
        else:
            reason = "malformed audit header: expected '[node=HOST ]type=TYPE msg=audit(TIME:SERIAL):'"
        raise ParseError(reason, raw=line)
    node, rtype, seconds, fraction, serial_text = match.groups()
    serial = int(serial_text)
    problem = header_problem(int(seconds), serial)
    if problem is not None:
        raise ParseError(problem, raw=line, host=node)
    time = f"{seconds}.{fraction}"
    body = main[match.end() + 1 :] if main[match.end() : match.end() + 1] == ":" else main[match.end() :]
    fields, quoted = _parse_pairs(body) if body else ({}, [])
    enriched = _parse_pairs(extra)[0] if extra else {}
    record = _new_object(AuditRecord)
    _set_node(record, node)
    _set_rtype(record, rtype)
    _set_time(record, time)
    _set_serial(record, serial)
    _set_epoch(record, float(time))
    _set_fields(record, fields)
    _set_enriched(record, enriched)
    _set_raw(record, text)
    _set_quoted(record, frozenset(quoted) if quoted else _NO_QUOTED)
    return record
