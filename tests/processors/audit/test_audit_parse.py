"""Tests for processors.audit.parse: one raw line to an AuditRecord."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from secstream_audit_native import RecordTokenizer

from processors.audit.parse import AuditRecord, _parse_python, _tokenize, parse_line
from processors.errors import ParseError

SYSCALL = (
    "type=SYSCALL msg=audit(1551487424.869:752): arch=c000003e syscall=59 success=yes exit=0 ppid=1305 pid=19197 "
    'auid=4294967295 uid=0 tty=(none) ses=4294967295 comm="sh" exe="/bin/dash" subj==unconfined key=(null)'
)
USER_AUTH = (
    "type=USER_AUTH msg=audit(1551485408.371:22): pid=15745 uid=0 auid=4294967295 ses=4294967295 "
    'subj==unconfined msg=\'op=PAM:authentication acct="root" exe="/usr/sbin/sshd" hostname=36.156.24.99 '
    "addr=36.156.24.99 terminal=ssh res=failed'"
)


class TestParseLine:
    def test_header_fields(self) -> None:
        """The header gives type, exact time text, serial and epoch; no node when absent."""
        record = parse_line(SYSCALL + "\n")
        assert record.node is None
        assert record.rtype == "SYSCALL"
        assert record.time == "1551487424.869"
        assert record.serial == 752
        assert record.epoch == pytest.approx(1551487424.869)
        assert record.raw == SYSCALL

    def test_record_is_frozen_and_slotted(self) -> None:
        """AuditRecord is a frozen slotted dataclass."""
        record = parse_line(SYSCALL)
        assert not hasattr(record, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.rtype = "X"  # type: ignore[misc]

    def test_node_prefix(self) -> None:
        """The optional node=HOST prefix becomes the node."""
        record = parse_line("node=web-01.example type=EOE msg=audit(1.5:3): ")
        assert record.node == "web-01.example"
        assert record.rtype == "EOE"
        assert record.fields == {}

    def test_quoted_and_unquoted_values(self) -> None:
        """Quotes are removed, quoted keys are remembered, unquoted values are kept verbatim."""
        record = parse_line(SYSCALL)
        assert record.fields["comm"] == "sh"
        assert record.fields["exe"] == "/bin/dash"
        assert record.fields["arch"] == "c000003e"
        assert record.quoted == frozenset({"comm", "exe"})

    def test_double_equals_value(self) -> None:
        """subj==unconfined gives the value '=unconfined' under key subj."""
        assert parse_line(SYSCALL).fields["subj"] == "=unconfined"

    def test_null_and_question_mark_kept(self) -> None:
        """(null) and ? are kept verbatim by the parser (the decoder treats them as unset)."""
        record = parse_line(SYSCALL)
        assert record.fields["key"] == "(null)"
        assert parse_line(USER_AUTH).fields["terminal"] == "ssh"
        line = "type=USER_END msg=audit(1.1:2): pid=1 msg='op=x hostname=? addr=? res=success'"
        assert parse_line(line).fields["hostname"] == "?"

    def test_hex_value_left_encoded(self) -> None:
        """Unquoted hex stays encoded in fields and is not marked quoted."""
        record = parse_line('type=EXECVE msg=audit(1.1:2): argc=2 a0="ls" a1=2D6C')
        assert record.fields["a1"] == "2D6C"
        assert "a1" not in record.quoted
        assert "a0" in record.quoted

    def test_spaces_inside_quotes(self) -> None:
        """A double-quoted value may hold spaces."""
        record = parse_line('type=CWD msg=audit(1.1:2): cwd="/home/a b/c d" extra=1')
        assert record.fields == {"cwd": "/home/a b/c d", "extra": "1"}

    def test_nested_msg_parsed_into_fields(self) -> None:
        """The nested msg='...' of user-space records becomes proper fields without stray quotes."""
        record = parse_line(USER_AUTH)
        assert record.fields["op"] == "PAM:authentication"
        assert record.fields["acct"] == "root"
        assert record.fields["exe"] == "/usr/sbin/sshd"
        assert record.fields["res"] == "failed"
        assert record.fields["msg"].startswith("op=PAM:authentication acct=")
        assert record.fields["pid"] == "15745"
        assert {"acct", "exe"} <= record.quoted

    def test_nested_key_clash_is_prefixed(self) -> None:
        """A nested key that clashes with an outer key is kept as msg.<key>, the outer value wins."""
        line = "type=USER_MGMT msg=audit(1.1:2): pid=1 uid=0 msg='op=add-user uid=1001 exe=\"/usr/sbin/useradd\" res=1'"
        record = parse_line(line)
        assert record.fields["uid"] == "0"
        assert record.fields["msg.uid"] == "1001"
        assert record.fields["exe"] == "/usr/sbin/useradd"

    def test_text_after_second_colon_space_kept(self) -> None:
        """Text after a second ': ' is not lost (msticpy drops it)."""
        record = parse_line('type=USER_CMD msg=audit(1.1:2): pid=1 msg=\'cwd="/" cmd=6C73 note="a: b" res=success\'')
        assert record.fields["note"] == "a: b"
        assert record.fields["res"] == "success"

    def test_enriched_part(self) -> None:
        """The ENRICHED part after \\x1d goes to enriched, quotes removed."""
        line = SYSCALL + '\x1dARCH=x86_64 SYSCALL=execve AUID="unset" UID="root"'
        record = parse_line(line)
        assert record.enriched == {"ARCH": "x86_64", "SYSCALL": "execve", "AUID": "unset", "UID": "root"}
        assert record.fields["comm"] == "sh"
        assert record.raw == line

    @pytest.mark.parametrize(
        ("line", "reason"),
        [
            ("", "empty line"),
            ("Mar  1 23:23:44 host sshd[1]: Accepted password for root", "no 'type='"),
            ("type=SYSCALL arch=c000003e", "msg=audit"),
            ("type=SYSCALL msg=audit(abc:12): x=1", "malformed"),
            ("type=SYSCALL msg=audit(1.1:): x=1", "malformed"),
        ],
    )
    def test_not_audit_raises_parse_error(self, line: str, reason: str) -> None:
        """A line that is not an audit record raises ParseError with a clear reason and the original text."""
        with pytest.raises(ParseError) as caught:
            parse_line(line)
        assert reason in caught.value.reason
        assert caught.value.raw == line

    @given(st.text())
    def test_arbitrary_text_only_parse_error(self, text: str) -> None:
        """On arbitrary text the parser returns a record or raises ParseError, nothing else."""
        try:
            record = parse_line(text)
        except ParseError as error:
            assert error.raw == text
        else:
            assert isinstance(record, AuditRecord)

    @given(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200),
        st.sampled_from(["", "node=h ", "node= "]),
    )
    def test_arbitrary_body_only_parse_error(self, body: str, prefix: str) -> None:
        """Any body after a valid header parses (or raises ParseError), never another exception."""
        line = f"{prefix}type=SYSCALL msg=audit(1700000000.123:42): {body}"
        try:
            record = parse_line(line)
        except ParseError:
            return
        assert record.serial == 42
        assert all(isinstance(value, str) for value in record.fields.values())


_KEYS = st.sampled_from(["a", "pid", "msg", "op", "acct", "k=", "x'", 'q"', ""])
_VALUES = st.sampled_from(
    ["1", "", '"root"', '"a b"', '""', '"', "=x", "(null)", "?", "'", "v'w", 'b"c', "'op=x y=\"z\"'"]
)
_HEADERS = st.sampled_from(
    [
        "type=SYSCALL msg=audit(1700000000.123:42): ",
        "node=h type=USER_AUTH msg=audit(1.5:3):",
        " \tnode=a type=B msg=audit(12.1:99999999999999999999)",
        "type=A msg=audit(1234567890123.1:1): ",
        "node= type=A msg=audit(1.1:1) ",
        "node=a\ttype=A msg=audit(1.1:1) ",
        "type=A msg=audit(1.1234567890:1) ",
        "type=A msg=audit(1.1:1",
        "",
    ]
)
_GAPS = st.sampled_from([" ", "  ", "\t", "\x85", "\xa0", "\u2028", "\x1c", ""])


@st.composite
def _bodies(draw: st.DrawFn) -> str:
    """Record bodies built from awkward keys, values and whitespace, with an optional nested msg='...'."""
    parts = [draw(_GAPS)]
    for _ in range(draw(st.integers(0, 6))):
        parts += [draw(_KEYS), "=", draw(_VALUES), draw(_GAPS)]
    if draw(st.booleans()):
        inner = "".join(draw(_KEYS) + "=" + draw(_VALUES) + draw(_GAPS) for _ in range(draw(st.integers(0, 4))))
        parts += [draw(_KEYS), "='", inner, "'", draw(_GAPS)]
    return "".join(parts)


class TestCompiledTokenizer:
    @given(st.one_of(_bodies(), st.text(alphabet=" \t=\"'ab\x85\x1d\xe9", max_size=40)), _HEADERS)
    def test_compiled_equals_python(self, body: str, header: str) -> None:
        """Whenever the compiled tokenizer answers, it gives exactly the Python parser's record."""
        line = header + body
        compiled = _tokenize(line)
        if compiled is None:
            return
        try:
            python = _parse_python(line)
        except ParseError:
            pytest.fail(f"the compiled tokenizer answered for a line the parser rejects: {line!r}")
        assert type(compiled) is AuditRecord
        assert compiled == python
        assert list(compiled.fields.items()) == list(python.fields.items())
        assert type(compiled.quoted) is frozenset

    @given(st.text(max_size=120))
    def test_compiled_never_answers_for_bad_lines(self, text: str) -> None:
        """On arbitrary text the compiled tokenizer answers only for lines the Python parser accepts."""
        if _tokenize(text) is not None:
            assert isinstance(_parse_python(text), AuditRecord)

    @given(st.text(alphabet=st.characters(categories=["Cs", "Ll", "Nd", "Zs"]), max_size=20))
    def test_lone_surrogates_go_to_the_python_parser(self, text: str) -> None:
        """Text holding lone surrogates (undecodable bytes kept by surrogateescape) parses or is bad input."""
        line = f"node=h\udcff type=CWD msg=audit(1.5:7): cwd={text}"
        assert _tokenize(line) is None
        try:
            record = parse_line(line)
        except ParseError:
            return
        assert record.node == "h\udcff" and record.raw == line

    def test_compiled_records_stay_frozen(self) -> None:
        """A record the compiled tokenizer made is as immutable and hashable as one the parser made."""
        line = "type=CWD msg=audit(1.5:7): cwd=/root"
        record = _tokenize(line)
        assert record is not None
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.rtype = "EOE"  # type: ignore[misc]
        assert hash(record.quoted) == hash(_parse_python(line).quoted)

    def test_class_without_the_slots_is_refused(self) -> None:
        """Binding a class that lacks a slot, or allocates its own way, fails at once, not on the first line."""

        @dataclasses.dataclass(slots=True)
        class Partial:
            node: str | None
            rtype: str

        class Plain:
            node = rtype = time = serial = epoch = fields = enriched = raw = quoted = None

        for cls in (Partial, Plain):
            with pytest.raises(TypeError, match="is not a slot"):
                RecordTokenizer(cls, frozenset())
        with pytest.raises(TypeError, match="has a __new__ of its own"):
            RecordTokenizer(dict, frozenset())

    def test_auditd_lines_take_the_compiled_path(self, msticpy_testdata: Path) -> None:
        """Every line of msticpy's auditd sample is split by the compiled tokenizer, as the Python parser does."""
        lines = (msticpy_testdata / "auditd_log.txt").read_text().splitlines()
        assert all(_tokenize(line) is not None for line in lines)
        assert [parse_line(line) for line in lines] == [_parse_python(line) for line in lines]
