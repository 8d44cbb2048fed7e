"""Tests for processors.audit.decode: ECS documents from coalesced events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.audit.coalesce import AuditEvent, Coalescer, CoalescerState, LateRecord
from processors.audit.decode import decode_event, decode_late, decode_saddr, execve_args, proctitle_argv
from processors.audit.parse import AuditRecord, parse_line
from processors.audit.syscalls import arch_name, syscall_name
from processors.errors import ParseError
from schemas import SCHEMA_VERSION, schema_for
from schemas.documents import stable_id

FIXTURE = Path(__file__).resolve().parents[2] / "data" / "audit" / "edge_cases.log"


def fixture_lines() -> list[str]:
    return [line for line in FIXTURE.read_text(encoding="utf-8").split("\n") if line and not line.startswith("#")]


def events_of(lines: list[str]) -> list[AuditEvent]:
    c, s = Coalescer(), CoalescerState()
    out = []
    for line in lines:
        out.extend(c.push(parse_line(line), s))
        out.extend(c.expire(s))
    out.extend(c.flush_all(s))
    return [e for e in out if isinstance(e, AuditEvent)]


@pytest.fixture(scope="module")
def docs() -> dict[int, dict[str, Any]]:
    return {event.serial: decode_event(event) for event in events_of(fixture_lines())}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema_for("events"))


def unescape(text: str) -> bytes:
    """Inverse of the reversible escaping of invalid UTF-8 (``\\\\`` and ``\\xNN``)."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1] == "\\":
            out += b"\\"
            i += 2
        elif text[i] == "\\" and text[i + 1] == "x":
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            out += text[i].encode()
            i += 1
    return bytes(out)


class TestDecodeExec:
    def test_envelope(self, docs: dict[int, dict[str, Any]]) -> None:
        """The document carries schema version, timestamp, deterministic id, host and sequence."""
        doc = docs[50]
        assert doc["schema_version"] == SCHEMA_VERSION
        assert doc["@timestamp"] == "2023-11-14T22:13:20.100Z"
        assert doc["event"]["id"] == stable_id("auditd", "web1", "1700000000.100", 50)
        assert doc["event"]["kind"] == "event"
        assert doc["event"]["action"] == "execve"
        assert doc["event"]["category"] == ["process"]
        assert doc["event"]["type"] == ["start"]
        assert doc["event"]["outcome"] == "success"
        assert doc["host"] == {"name": "web1"}
        assert doc["auditd"]["sequence"] == 50
        assert doc["auditd"]["message_types"] == ["SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE"]
        assert doc["auditd"]["partial"] is False

    def test_args_hex_and_segments(self, docs: dict[int, dict[str, Any]]) -> None:
        """Quoted, hex and aN[k]-segmented arguments all come out decoded and joined."""
        process = docs[50]["process"]
        assert process["args"] == ["bash", "-c", "echo hello world!!!"]
        assert process["args_count"] == 3
        assert process["command_line"] == "bash -c echo hello world!!!"
        assert process["title"] == "bash -c echo hello world!!!"
        assert process["working_directory"] == "/home/alice/my dir"
        assert (process["pid"], process["ppid"], process["executable"], process["name"]) == (
            200,
            100,
            "/usr/bin/bash",
            "bash",
        )

    def test_enriched_names(self, docs: dict[int, dict[str, Any]]) -> None:
        """uid/auid names come from the ENRICHED fields."""
        user = docs[50]["user"]
        assert user["id"] == "0"
        assert user["name"] == "root"
        assert user["audit"] == {"id": "1000", "name": "alice"}
        assert docs[50]["auditd"]["session"] == "5"
        assert docs[50]["tags"] == ["exec-watch"]

    def test_several_execve_records_and_aarch64(self, docs: dict[int, dict[str, Any]]) -> None:
        """Arguments continue across EXECVE records; aarch64 syscall 221 is execve."""
        doc = docs[7]
        assert doc["event"]["action"] == "execve"
        assert doc["auditd"]["data"]["arch"] == "aarch64"
        assert doc["process"]["args"][:3] == ["python3", "-c", "print(1)"]
        assert doc["process"]["args"][4] == "ABCD"
        assert doc["process"]["args_count"] == 5

    def test_quoted_hex_lookalike_not_decoded(self, docs: dict[int, dict[str, Any]]) -> None:
        """A quoted argument that looks like hex is kept as text."""
        assert docs[7]["process"]["args"][4] == "ABCD"

    def test_invalid_utf8_kept_reversibly(self, docs: dict[int, dict[str, Any]]) -> None:
        """Invalid UTF-8 is escaped reversibly, never dropped, and flagged."""
        arg = docs[7]["process"]["args"][3]
        assert unescape(arg) == b"caf\xe9\\x"
        assert "invalid_utf8:a3" in docs[7]["auditd"]["warnings"]

    def test_unset_ids(self, docs: dict[int, dict[str, Any]]) -> None:
        """4294967295 means unset: no auid, session None."""
        doc = docs[7]
        assert "audit" not in doc["user"]
        assert doc["auditd"]["session"] is None

    def test_proctitle_truncated(self, docs: dict[int, dict[str, Any]]) -> None:
        """A 128-byte PROCTITLE is flagged as truncated and split on NUL."""
        data = docs[7]["auditd"]["data"]
        assert data["proctitle_truncated"] is True
        assert data["proctitle_argv"][0] == "python3"
        assert docs[50]["auditd"]["data"]["proctitle_truncated"] is False

    def test_argc_mismatch_flagged(self) -> None:
        """argc that disagrees with the arguments present is flagged."""
        records = [parse_line('type=EXECVE msg=audit(1.1:1): argc=3 a0="ls" a1="-l"')]
        args, argc, warnings = execve_args(records)
        assert (args, argc) == (["ls", "-l"], 3)
        assert "argc_mismatch" in warnings
        args, argc, warnings = execve_args([parse_line('type=EXECVE msg=audit(1.1:1): argc=2 a0="ls" a1="-l"')])
        assert warnings == []

    def test_proctitle_helper_quoted(self) -> None:
        """A quoted PROCTITLE is used as is."""
        argv, truncated, valid = proctitle_argv(parse_line('type=PROCTITLE msg=audit(1.1:1): proctitle="bash"'))
        assert (argv, truncated, valid) == (["bash"], False, True)


class TestDecodeNetworkAndUser:
    def test_sockaddr_inet(self, docs: dict[int, dict[str, Any]]) -> None:
        """AF_INET saddr gives destination ip/port for connect; failure outcome from success=no."""
        doc = docs[8]
        assert doc["event"]["action"] == "connect"
        assert doc["event"]["outcome"] == "failure"
        assert doc["destination"] == {"ip": "10.0.0.5", "port": 443, "address": "10.0.0.5"}
        assert doc["related"]["ip"] == ["10.0.0.5"]

    def test_sockaddr_inet6(self, docs: dict[int, dict[str, Any]]) -> None:
        """AF_INET6 saddr gives an IPv6 destination."""
        assert docs[9]["destination"]["ip"] == "2001:db8::1"
        assert docs[9]["destination"]["port"] == 80

    def test_sockaddr_unix(self, docs: dict[int, dict[str, Any]]) -> None:
        """AF_UNIX saddr gives the socket path."""
        assert docs[10]["file"] == {"path": "/run/systemd/journal/dev-log"}
        assert docs[10]["auditd"]["data"]["socket"]["family"] == "unix"

    def test_decode_saddr_edge_cases(self) -> None:
        """Abstract unix sockets get '@'; garbage gives None."""
        assert decode_saddr("0100" + b"\x00name".hex()) == {"family": "unix", "path": "@name"}
        assert decode_saddr("zz") is None
        assert decode_saddr("02") is None

    def test_user_cmd_hex(self, docs: dict[int, dict[str, Any]]) -> None:
        """USER_CMD cmd is hex-decoded; cwd with spaces inside quotes in the nested msg is kept."""
        doc = docs[51]
        assert doc["auditd"]["data"]["cmd"] == "systemctl restart nginx"
        assert doc["process"]["working_directory"] == "/home/alice/my dir"
        assert doc["event"]["action"] == "user_cmd"
        assert doc["user"]["name"] == "alice"
        assert "systemctl restart nginx" in doc["message"]

    def test_user_auth(self, docs: dict[int, dict[str, Any]]) -> None:
        """USER_AUTH: acct as the effective user (as Auditbeat), addr as source ip, res=failed, ? values unset."""
        doc = docs[52]
        assert doc["event"]["category"] == ["authentication"]
        assert doc["event"]["outcome"] == "failure"
        assert doc["user"]["effective"] == {"name": "root"}
        assert "name" not in doc["user"]
        assert doc["source"]["ip"] == "203.0.113.9"
        assert doc["auditd"]["session"] is None
        assert doc["auditd"]["data"]["res"] == "failed"

    def test_default_host(self) -> None:
        """Without node= the configured default host is used."""
        event = events_of(["type=USER_AUTH msg=audit(1.1:1): pid=1 msg='op=x res=success'"])[0]
        assert decode_event(event, default_host="fallback")["host"] == {"name": "fallback"}


class TestSyscallTables:
    @pytest.mark.parametrize(
        ("arch", "number", "name"),
        [
            ("c000003e", "59", "execve"),
            ("c000003e", "322", "execveat"),
            ("c000003e", "56", "clone"),
            ("c000003e", "435", "clone3"),
            ("c000003e", "57", "fork"),
            ("c000003e", "58", "vfork"),
            ("c000003e", "231", "exit_group"),
            ("c000003e", "42", "connect"),
            ("c000003e", "288", "accept4"),
            ("c000003e", "101", "ptrace"),
            ("c000003e", "313", "finit_module"),
            ("c000003e", "2", "open"),
            ("c00000b7", "221", "execve"),
            ("c00000b7", "281", "execveat"),
            ("c00000b7", "220", "clone"),
            ("c00000b7", "435", "clone3"),
            ("c00000b7", "93", "exit"),
            ("c00000b7", "94", "exit_group"),
            ("c00000b7", "203", "connect"),
            ("c00000b7", "56", "openat"),
            ("c00000b7", "146", "setuid"),
            ("c00000b7", "129", "kill"),
            ("c00000b7", "273", "finit_module"),
        ],
    )
    def test_syscall_names(self, arch: str, number: str, name: str) -> None:
        """Syscall numbers map to names for x86_64 and aarch64."""
        assert syscall_name(arch, number) == name

    def test_unknown(self) -> None:
        """Unknown arch or number gives None; arch names are translated."""
        assert syscall_name("deadbeef", "59") is None
        assert syscall_name("c000003e", "99999") is None
        assert syscall_name("c000003e", "x") is None
        assert arch_name("C000003E") == "x86_64"


class TestLateAndSchema:
    def test_decode_late(self) -> None:
        """A late record gets its own small document linked to its event."""
        c, s = Coalescer(), CoalescerState()
        lines = [line for line in fixture_lines() if "(1700000000.300:8)" in line]
        for line in lines:
            c.push(parse_line(line), s)
        out = c.push(parse_line('node=db2 type=PATH msg=audit(1700000000.300:8): item=0 name="/x"'), s)
        late = out[0]
        assert isinstance(late, LateRecord)
        doc = decode_late(late)
        assert doc["auditd"]["late_of"] == stable_id("auditd", "db2", "1700000000.300", 8)
        assert doc["event"]["id"] == stable_id("auditd-late", "db2", "1700000000.300", 8, late.record.raw)
        assert doc["auditd"]["message_types"] == ["PATH"]
        jsonschema.validate(doc, schema_for("events"))

    def test_fixture_documents_validate(self, docs: dict[int, dict[str, Any]], validator: Any) -> None:
        """Every fixture document validates against events.schema.json and serialises with orjson."""
        assert len(docs) == 7
        for doc in docs.values():
            validator.validate(doc)
            orjson.dumps(doc)

    def test_msticpy_log_documents_validate(self, msticpy_testdata: Path, validator: Any) -> None:
        """All 938 documents from msticpy's auditd_log.txt validate against the schema."""
        lines = (msticpy_testdata / "auditd_log.txt").read_text(encoding="utf-8").splitlines()
        events = events_of(lines)
        assert len(events) == 938
        for event in events:
            doc = decode_event(event)
            validator.validate(doc)
            orjson.dumps(doc)


class TestDecodeRobustness:
    def test_forged_argument_index(self) -> None:
        """A forged huge argument index neither allocates a huge list nor raises."""
        record = parse_line('type=EXECVE msg=audit(1.1:1): argc=2 a0="ls" a999999999="x" a' + "9" * 5000 + '="y"')
        args, argc, warnings = execve_args([record])
        assert (args, argc) == (["ls", "x"], 2)
        assert "argc_mismatch" in warnings

    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["SYSCALL", "EXECVE", "PROCTITLE", "SOCKADDR", "CWD", "PATH", "USER_CMD", "LOGIN"]),
                st.text(alphabet="aArgcxyz0123456789=\"' []()?-ABCDEF_\x1d", max_size=80),
            ),
            min_size=1,
            max_size=5,
        )
    )
    def test_decode_never_raises(self, parts: list[tuple[str, str]]) -> None:
        """Any event built from parseable records decodes to a schema-valid document."""
        records = []
        for rtype, body in parts:
            try:
                records.append(parse_line(f"node=h type={rtype} msg=audit(1700000000.5:9): {body}"))
            except ParseError:
                continue
        if not records:
            return
        event = events_of([r.raw for r in records if r.rtype not in ("EOE",)])
        for item in event:
            doc = decode_event(item)
            jsonschema.validate(doc, schema_for("events"))
            orjson.dumps(doc)


class TestDecodeFastPaths:
    """The decoder's shortcuts give exactly what the plain library calls give."""

    @given(st.text(alphabet="0123456789abcdef.:x? ", max_size=20))
    def test_ip_memo_same_as_ipaddress(self, value: str) -> None:
        """The memoised address normalisation answers as ipaddress does, also the second time."""
        import ipaddress

        from processors.audit.decode import _ip

        try:
            expected: str | None = str(ipaddress.ip_address(value))
        except ValueError:
            expected = None
        if value in ("", "?"):
            expected = None
        assert _ip(value) == expected
        assert _ip(value) == expected

    def test_non_ascii_digit_argument_keys_ignored(self) -> None:
        """``a١`` (an Arabic-Indic digit) is not an argument key, as ``aN`` means ASCII digits only."""
        record = parse_line('type=EXECVE msg=audit(1.0:1): argc=1 a0="ls" a١="x"')
        assert execve_args([record]) == (["ls"], 1, [])


_FIELD_KEYS = [
    "pid",
    "ppid",
    "exe",
    "comm",
    "uid",
    "auid",
    "euid",
    "gid",
    "ses",
    "cwd",
    "name",
    "acct",
    "cmd",
    "key",
    "addr",
    "hostname",
    "op",
    "res",
    "success",
    "syscall",
    "arch",
    "a0",
    "a1",
    "a2",
    "a3[0]",
    "a3[1]",
    "a2_len",
    "a12",
    "argc",
    "proctitle",
    "saddr",
    "tty",
    "msg",
    "terminal",
    "nametype",
]
_HEX = st.binary(max_size=12).map(lambda b: b.hex().upper() if len(b) % 3 == 0 else b.hex())
_VALUES = st.one_of(
    st.sampled_from(["4294967295", "?", "(null)", "", "(none)", "-1", "0", "-0", "007", "59", "c000003e", "C00000B7"]),
    st.sampled_from(["yes", "no", "success", "failed", "1", "/usr/bin/ls", "/", "x/", "10.0.0.1", "::1", "١٢"]),
    st.sampled_from(["0200A3B60A0000010000000000000000", "01002F746D702F736F636B00", "0A00"]),
    _HEX,
    st.integers(min_value=-(10**21), max_value=10**21).map(str),
    st.text(max_size=12),
    st.text(alphabet="k\x01ey", max_size=6),
)
_RECORD = st.tuples(
    st.sampled_from(["SYSCALL", "EXECVE", "PROCTITLE", "SOCKADDR", "CWD", "PATH", "USER_CMD", "USER_AUTH", "LOGIN"])
    | st.text(min_size=1, max_size=8),
    st.dictionaries(st.sampled_from(_FIELD_KEYS) | st.text(max_size=4), _VALUES, max_size=10),
    st.dictionaries(st.sampled_from(["UID", "AUID", "EUID", "GID", "SYSCALL", "ARCH"]), _VALUES, max_size=4),
    st.data(),
)


class TestCompiledDecoder:
    """The compiled decoder makes the reference's exact document, or leaves the event to it."""

    @given(st.lists(_RECORD, min_size=1, max_size=6), st.sampled_from([None, "", "node-a"]), st.booleans())
    def test_same_document_as_the_reference(self, parts: list[Any], node: str | None, partial: bool) -> None:
        from processors.audit.decode import _NATIVE, _build

        records = []
        for rtype, fields, enriched, data in parts:
            quoted = frozenset(data.draw(st.sets(st.sampled_from(sorted(fields) or [""]))) & set(fields))
            records.append(AuditRecord(node, rtype, "1700000000.5", 9, 1700000000.5, fields, enriched, "raw", quoted))
        before = [(dict(r.fields), dict(r.enriched)) for r in records]
        native = _NATIVE.build(node, 9, 1700000000.5, "id-1", tuple(records), partial, "default")
        reference = _build(
            node=node,
            time="1700000000.5",
            serial=9,
            epoch=1700000000.5,
            event_id="id-1",
            records=tuple(records),
            partial=partial,
            default_host="default",
        )
        assert [(r.fields, r.enriched) for r in records] == before, "the records were changed"
        if native is not None:
            # without sorted keys: insertion order is the same too
            assert orjson.dumps(native) == orjson.dumps(reference)

    def test_declines_only_what_python_must_decide(self) -> None:
        """Invalid UTF-8 in a hex value, a lone surrogate and a non-ASCII number go to Python."""
        from processors.audit.decode import _NATIVE

        def build(fields: dict[str, str]) -> Any:
            record = AuditRecord("h", "SYSCALL", "1.0", 1, 1.0, fields, {}, "raw", frozenset())
            return _NATIVE.build("h", 1, 1.0, "id", (record,), False, "d")

        assert build({"pid": "12", "exe": "2F62696E2F6C73"}) is not None
        assert build({"exe": "FF"}) is None
        assert build({"comm": "\udcff"}) is None
        assert build({"pid": "١٢"}) is None
