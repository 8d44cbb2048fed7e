"""The audit header rule has one home (processors.audit.header); every reader agrees with it (#19, #20)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.audit.header import MAX_EPOCH, MAX_SERIAL, event_key
from processors.audit.parse import _parse_python, _tokenize, parse_line
from processors.errors import ParseError
from streams.cli.kafka import line_host
from streams.graph import RawLine
from streams.serde import audit_event_key, pack_audit_records
from tests.strategies import audit_headers

HOSTILE = [
    "node=h1 type=USER_LOGIN msg=audit(253402300800.000:1): pid=1 uid=0 msg='op=login res=failed'",
    "node=h1 type=USER_LOGIN msg=audit(253402300799.999:1): pid=1",
    "type=SYSCALL msg=audit(1795766402.000:18446744073709551616): pid=1",
    "type=SYSCALL msg=audit(1795766402.000:18446744073709551615): pid=1",
    "type=SYSCALL msg=audit(1795766402.000:٣): pid=1",
    "type=SYSCALL msg=audit(١٧٩٥٧٦٦٤٠٢.000:3): pid=1",
    "node=h\x1dx type=SYSCALL msg=audit(1.000:1): pid=1",
    "node=dé type=SYSCALL msg=audit(1.000:1): pid=1",
    "node=h\x85 type=SYSCALL msg=audit(1.000:1): pid=1",
    "  \tnode=h type=T msg=audit(1.1:0)",
    "node= type=SYSCALL msg=audit(1.000:1):",
    "type=SYSCALL msg=audit(1.000:):",
]


def agree(line: str) -> None:
    """parse_line (Python and compiled), serde, the compiled route and the produce command read ``line``'s
    event key as processors.audit.header.event_key does."""
    key = event_key(line, "fallback")
    try:
        record = parse_line(line)
    except ParseError:
        record = None
    compiled = _tokenize(line)
    if compiled is not None:
        assert compiled == _parse_python(line)
    if key is None:
        assert record is None
    else:
        assert record is not None
        assert (record.node if record.node is not None else "fallback", record.serial) == key
    assert audit_event_key(RawLine(line, {}, None, 0.0), "fallback") == key
    data = line.encode("utf-8", "surrogateescape")
    packed = pack_audit_records([_Record(data)], "fallback", 1 << 20)
    if packed is not None:
        ((host, _value, _headers),) = packed
        assert host == (key[0] if key is not None else "fallback")
    if key is not None and line.lstrip(" \t").startswith("node="):
        assert line_host(data) == key[0].encode("utf-8", "surrogateescape")


class _Record:
    """A raw Kafka record as the route stage reads it."""

    def __init__(self, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = "raw", 0, 0, None, value


class TestOneHeaderRule:
    @pytest.mark.parametrize("line", HOSTILE)
    def test_hostile_headers_agree(self, line: str) -> None:
        """Every reader of the header agrees on hostile headers."""
        agree(line)

    @given(audit_headers())
    def test_generated_headers_agree(self, line: str) -> None:
        """Every reader of the header agrees on generated headers around every edge."""
        agree(line + " pid=1")

    def test_ranges(self) -> None:
        """The year 10000 and a serial past 64 bits are outside; the last second and serial before are in."""
        assert event_key(f"type=T msg=audit({MAX_EPOCH - 1}.999:{MAX_SERIAL})", "h") == ("h", MAX_SERIAL)
        assert event_key(f"type=T msg=audit({MAX_EPOCH}.000:1)", "h") is None
        assert event_key(f"type=T msg=audit(1.000:{MAX_SERIAL + 1})", "h") is None
        with pytest.raises(ParseError, match="after the year 9999"):
            parse_line(f"node=h1 type=USER_LOGIN msg=audit({MAX_EPOCH}.000:1): pid=1")

    @given(st.text(alphabet="٣۳१", min_size=1, max_size=3))
    def test_non_ascii_digits_are_not_serials(self, digits: str) -> None:
        """Digits that are not ASCII make no header."""
        assert event_key(f"type=T msg=audit(1.0:{digits})", "h") is None
