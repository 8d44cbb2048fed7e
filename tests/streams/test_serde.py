"""Raw Kafka values → RawLines, routing keys, and the internal by-host framing."""

from __future__ import annotations

import base64

import jsonschema
import orjson
from hypothesis import given
from hypothesis import strategies as st

from schemas import schema_for
from streams.graph import RawLine
from streams.serde import (
    HOST_HEADER,
    SOURCE_HEADER,
    SerdeSettings,
    audit_event_key,
    decode_internal,
    decode_value,
    encode_internal,
)

AUDIT = b"type=SYSCALL msg=audit(1551487424.869:1234): arch=c000003e syscall=59 success=yes"
NODE_AUDIT = b"node=web-1 " + AUDIT


def _decode(value: bytes | None, key: bytes | None = None, settings: SerdeSettings = SerdeSettings()):  # noqa: B008
    return decode_value(
        value, key=key, stream="auditd", topic="raw", partition=2, offset=41, received=10.0, settings=settings
    )


class TestDecodeValue:
    def test_raw_text_lines__split_and_sourced(self) -> None:
        """Raw text is split into non-blank lines, each carrying topic, partition, offset and line index."""
        decoded = _decode(AUDIT + b"\r\n\n" + NODE_AUDIT + b"\n")
        assert [line.data for line in decoded.lines] == [AUDIT, NODE_AUDIT]
        assert decoded.lines[1].source == {"topic": "raw", "partition": 2, "offset": 41, "line": 1}
        assert decoded.deadletters == []

    def test_single_line__source_has_no_line_index(self) -> None:
        """A one-line value's source is just topic, partition and offset."""
        (line,) = _decode(AUDIT).lines
        assert line.source == {"topic": "raw", "partition": 2, "offset": 41}

    def test_key__is_the_host_of_last_resort(self) -> None:
        """The message key becomes the line's host when the value names none."""
        (line,) = _decode(AUDIT, key=b"db-7").lines
        assert line.host == "db-7"

    def test_json_envelope__message_and_host_fields(self) -> None:
        """A JSON object yields the lines of its message field and the host of its host field."""
        value = orjson.dumps({"message": AUDIT.decode(), "host": "mail-2"})
        (line,) = _decode(value, key=b"ignored").lines
        assert line.data == AUDIT
        assert line.host == "mail-2"

    def test_json_envelope__configurable_fields(self) -> None:
        """The message and host field names come from the settings."""
        value = orjson.dumps({"log": AUDIT.decode(), "hostname": "h"})
        (line,) = _decode(value, settings=SerdeSettings(message_field="log", host_field="hostname")).lines
        assert (line.data, line.host) == (AUDIT, "h")

    def test_json_envelope_without_message__dead_letter_keeps_bytes(self) -> None:
        """An object without the message field is a dead letter with the original bytes and source."""
        value = b'{"msg": "x"}'
        decoded = _decode(value)
        (doc,) = decoded.deadletters
        assert decoded.lines == []
        assert base64.b64decode(doc["secstream"]["original_base64"]) == value
        assert doc["secstream"]["source"] == {"topic": "raw", "partition": 2, "offset": 41}
        jsonschema.validate(doc, schema_for("deadletter"))

    def test_broken_json__dead_letter(self) -> None:
        """A value that starts like a JSON object but is not valid JSON is a dead letter."""
        (doc,) = _decode(b'{"message": "unterminated').deadletters
        assert "not valid JSON" in doc["event"]["reason"]

    def test_non_string_host__dead_letter(self) -> None:
        """A host field that is not a string is a dead letter, not a crash."""
        assert _decode(b'{"message": "a", "host": 3}').deadletters

    def test_tombstone_and_empty__nothing(self) -> None:
        """A null or empty value carries no input."""
        assert _decode(None).lines == [] and _decode(None).deadletters == []
        assert _decode(b"").lines == []

    @given(st.binary(max_size=300), st.one_of(st.none(), st.binary(max_size=20)))
    def test_arbitrary_bytes__lines_or_dead_letter(self, value: bytes, key: bytes | None) -> None:
        """Any bytes decode to lines or dead letters, never an exception, and no line is lost."""
        decoded = _decode(value, key)
        if decoded.deadletters:
            assert base64.b64decode(decoded.deadletters[0]["secstream"]["original_base64"]) == value
        elif not value.lstrip().startswith(b"{"):
            assert len(decoded.lines) == len([chunk for chunk in value.split(b"\n") if chunk.strip()])


class TestRouting:
    def test_audit_event_key__node_wins(self) -> None:
        """``node=`` of the line wins over the envelope host and the default."""
        assert audit_event_key(RawLine(NODE_AUDIT, host="other"), "dflt") == ("web-1", 1234)

    def test_audit_event_key__envelope_then_default(self) -> None:
        """Without ``node=`` the envelope host is used, else the default host."""
        assert audit_event_key(RawLine(AUDIT, host="env"), "dflt") == ("env", 1234)
        assert audit_event_key(RawLine(AUDIT), "dflt") == ("dflt", 1234)

    def test_audit_event_key__host_and_serial(self) -> None:
        """The event key is the routing host and the serial of the audit header."""
        assert audit_event_key(RawLine(NODE_AUDIT), "d") == ("web-1", 1234)
        assert audit_event_key(RawLine(AUDIT.decode()), "d") == ("d", 1234)

    def test_audit_event_key__none_without_header(self) -> None:
        """A line without an audit header has no event key (it can only become a dead letter)."""
        assert audit_event_key(RawLine(b"garbage"), "d") is None


class TestInternalFraming:
    def test_round_trip__bytes_source_and_host(self) -> None:
        """Lines framed for the internal topic come back with their bytes, source and envelope host."""
        lines = _decode(AUDIT + b"\n\xff\xfe not utf-8", key=b"h1").lines
        value, headers = encode_internal(lines)
        back = decode_internal(value, headers, 11.0, "d")[0]
        assert [line.data for line in back] == [line.data for line in lines]
        assert [line.source for line in back] == [line.source for line in lines]
        assert {line.host for line in back} == {"h1"}

    def test_packed__lines_of_many_records_keep_their_own_source_and_host(self) -> None:
        """Lines of several raw records packed into one message come back each with its own origin."""
        first = _decode(AUDIT + b"\n" + AUDIT, key=b"h1").lines
        second = decode_value(
            b'{"message": "' + AUDIT + b'"}',
            key=None,
            stream="auditd",
            topic="raw",
            partition=0,
            offset=7,
            received=1.0,
        ).lines
        third = _decode(NODE_AUDIT).lines
        lines = first + second + third
        value, headers = encode_internal(lines)
        back = decode_internal(value, headers, 11.0, "d")[0]
        assert [(line.data, line.source, line.host) for line in back] == [
            (line.data, line.source, line.host) for line in lines
        ]
        assert {line.received for line in back} == {11.0}

    def test_event_keys__carried_in_the_frame(self) -> None:
        """The route stage's keys come back as written (serials beyond 64 bits included), not recomputed."""
        lines = _decode(NODE_AUDIT).lines
        keys = {("web-1", 1234), ("web-1", 99999999999999999999)}
        value, headers = encode_internal(lines, keys)
        back, carried = decode_internal(value, headers, 0.0, "dflt")
        assert carried == keys
        assert [line.data for line in back] == [NODE_AUDIT]

    def test_event_keys__computed_for_frames_without_them(self) -> None:
        """A frame written without keys (an older router) gets them from the lines' headers."""
        value, headers = encode_internal(_decode(AUDIT + b"\n" + NODE_AUDIT + b"\ngarbage").lines)
        assert decode_internal(value, headers, 0.0, "dflt")[1] == {("dflt", 1234), ("web-1", 1234)}

    def test_no_host__comes_back_without_host(self) -> None:
        """A line without envelope host or key comes back without a host."""
        value, headers = encode_internal(_decode(AUDIT).lines)
        assert decode_internal(value, dict(headers), 0.0, "d")[0][0].host is None

    def test_one_record_framing__still_decoded(self) -> None:
        """Messages in the older one-record framing (source and host in headers) still decode after an upgrade."""
        headers = [(SOURCE_HEADER, b'{"topic":"raw","partition":1,"offset":5}'), (HOST_HEADER, b"h9")]
        back = decode_internal(AUDIT + b"\n" + AUDIT, headers, 3.0, "d")[0]
        assert [line.data for line in back] == [AUDIT, AUDIT]
        assert {line.host for line in back} == {"h9"}
        assert back[0].source["offset"] == 5

    @given(st.lists(st.tuples(st.binary(max_size=200), st.none() | st.binary(max_size=20)), min_size=1, max_size=5))
    def test_arbitrary_records__round_trip(self, records: list[tuple[bytes, bytes | None]]) -> None:
        """Whatever raw records decode into lines, packing and unpacking them gives the same lines."""
        lines = [line for value, key in records for line in _decode(value, key).lines]
        if not lines:
            return
        value, headers = encode_internal(lines)
        back = decode_internal(value, headers, 0.0, "d")[0]
        assert [(line.data, line.source, line.host) for line in back] == [
            (line.data, line.source, line.host) for line in lines
        ]
