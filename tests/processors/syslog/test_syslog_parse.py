"""Syslog line and Log Analytics row parsing, and message interpretation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.errors import ParseError
from processors.syslog import interpret, parse_syslog_line, syslog_row_to_event
from processors.syslog.parse import _SUDO_KEYS, _sudo_fields
from schemas import schema_for

DATA = Path(__file__).resolve().parents[2] / "data" / "syslog"
EVENTS = jsonschema.Draft202012Validator(schema_for("events"))


def _valid(doc: dict[str, Any]) -> dict[str, Any]:
    EVENTS.validate(doc)
    return doc


class TestRfc3164:
    def test_pri_header_fields(self) -> None:
        """A PRI line yields facility, severity, host, process name and pid."""
        doc = _valid(parse_syslog_line("<38>Jul 10 15:13:25 web1 sshd[1234]: hello", year=2019))
        assert doc["@timestamp"] == "2019-07-10T15:13:25.000Z"
        assert doc["host"]["name"] == "web1"
        assert doc["process"] == {"name": "sshd", "pid": 1234}
        assert doc["log"]["syslog"]["facility"] == {"code": 4, "name": "auth"}
        assert doc["log"]["syslog"]["severity"] == {"code": 6, "name": "info"}
        assert doc["message"] == "hello"
        assert doc["event"]["action"] == "log"

    def test_without_pri_and_space_padded_day(self) -> None:
        """A file line without PRI and with a space-padded day parses."""
        doc = _valid(parse_syslog_line("Jul  5 08:01:02 web1 kernel: x", year=2020))
        assert doc["@timestamp"] == "2020-07-05T08:01:02.000Z"
        assert "priority" not in doc["log"]["syslog"]

    def test_local_line_without_host_uses_default_host(self) -> None:
        """A local line ``TAG[PID]: MSG`` has no host: the default host is used."""
        doc = parse_syslog_line("<13>Jul 10 15:13:25 sudo[7]: hi", year=2019, default_host="me")
        assert doc["host"]["name"] == "me"
        assert doc["process"]["name"] == "sudo"

    def test_year_is_required_or_derived_from_received(self) -> None:
        """A 3164 line needs year= or received=; received= in January dates a December line to last year."""
        with pytest.raises(ParseError):
            parse_syslog_line("Dec 31 23:59:59 h app: x")
        doc = parse_syslog_line("Dec 31 23:59:59 h app: x", received=1577836805.0)  # 2020-01-01T00:00:05Z
        assert doc["@timestamp"] == "2019-12-31T23:59:59.000Z"

    def test_impossible_date_is_parse_error(self) -> None:
        """An impossible date raises ParseError carrying the raw line."""
        with pytest.raises(ParseError) as caught:
            parse_syslog_line("Feb 30 12:00:00 h app: x", year=2019)
        assert caught.value.raw == "Feb 30 12:00:00 h app: x"

    def test_rsyslog_iso_timestamp(self) -> None:
        """The rsyslog high-precision format (ISO timestamp) parses with its offset."""
        doc = _valid(parse_syslog_line("2019-07-10T17:13:25.813+02:00 h su[3]: (to root) peteb on pts/0"))
        assert doc["@timestamp"] == "2019-07-10T15:13:25.813Z"
        assert doc["event"]["action"] == "su"

    def test_same_line_same_id(self) -> None:
        """The event id is deterministic, and differs for different lines."""
        line = "Jul 10 15:13:25 web1 sshd[1]: a"
        assert parse_syslog_line(line, year=2019)["event"]["id"] == parse_syslog_line(line, year=2019)["event"]["id"]
        assert (
            parse_syslog_line(line + "b", year=2019)["event"]["id"] != parse_syslog_line(line, year=2019)["event"]["id"]
        )


class TestRfc5424:
    def test_structured_data_and_bom(self) -> None:
        """RFC 5424 with SD elements (escaped quotes) and a BOM-prefixed message."""
        line = (
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
            '[exampleSDID@32473 iut="3" eventSource="App\\"X\\]"][other@1 a="b"] \ufeffAn application event'
        )
        doc = _valid(parse_syslog_line(line))
        meta = doc["log"]["syslog"]
        assert meta["version"] == "1" and meta["msgid"] == "ID47" and meta["appname"] == "evntslog"
        assert meta["structured_data"] == {
            "exampleSDID@32473": {"iut": "3", "eventSource": 'App"X]'},
            "other@1": {"a": "b"},
        }
        assert doc["message"] == "An application event"
        assert doc["host"]["name"] == "mymachine.example.com"
        assert "process" in doc and "pid" not in doc["process"]

    def test_nil_values(self) -> None:
        """NILVALUE host/app/procid/msgid/SD fall back to defaults and are left out."""
        doc = _valid(parse_syslog_line("<34>1 2003-10-11T22:14:15Z - - - - - msg", default_host="d"))
        assert doc["host"]["name"] == "d" and "process" not in doc and doc["message"] == "msg"

    def test_interpreted_like_3164(self) -> None:
        """A 5424 sshd line is interpreted as well."""
        line = "<38>1 2019-07-10T15:13:25Z h sshd 99 - - Accepted password for bob from 10.1.2.3 port 22 ssh2"
        doc = _valid(parse_syslog_line(line))
        assert doc["event"]["action"] == "ssh_login" and doc["process"]["pid"] == 99
        assert doc["source"] == {"address": "10.1.2.3", "ip": "10.1.2.3", "port": 22}

    def test_malformed_sd_kept_as_message(self) -> None:
        """A broken SD block is kept in the message, not dropped."""
        doc = parse_syslog_line('<34>1 2003-10-11T22:14:15Z h a - - [broken x="1 msg')
        assert doc["message"] == '[broken x="1 msg'


class TestNotSyslog:
    @pytest.mark.parametrize(
        "line", ["", "   \n", "\x00\x01\x02binary\x03\x04", "hello world", "<999>Jul 10 15:13:25 h a: x"]
    )
    def test_rejected(self, line: str) -> None:
        """Empty, binary, header-less and bad-PRI lines raise ParseError."""
        with pytest.raises(ParseError):
            parse_syslog_line(line, year=2019)

    def test_pri_only_line_uses_received(self) -> None:
        """A PRI line without timestamp is dated with received=."""
        doc = parse_syslog_line("<13>just text", received=0.0)
        assert doc["@timestamp"] == "1970-01-01T00:00:00.000Z" and doc["message"] == "just text"

    @given(st.text(max_size=300))
    def test_only_parse_error_on_arbitrary_text(self, line: str) -> None:
        """On arbitrary text the parser either returns a valid document or raises ParseError."""
        try:
            doc = parse_syslog_line(line, year=2019)
        except ParseError:
            return
        EVENTS.validate(doc)

    @given(
        st.from_regex(
            r"<[0-9]{1,3}>(1 \S+ \S+ \S+ \S+ \S+ .*|Jan [0-9]{1,2} [0-9]{2}:[0-9]{2}:[0-9]{2} .*)", fullmatch=True
        )
    )
    def test_only_parse_error_on_header_like_text(self, line: str) -> None:
        """Header-shaped garbage also only raises ParseError."""
        try:
            doc = parse_syslog_line(line, year=2019)
        except ParseError:
            return
        EVENTS.validate(doc)


class TestInterpret:
    def test_sample_file_matches_golden(self) -> None:
        """Each line of the hand-made auth.log gives the expected action, outcome and users."""
        lines = (DATA / "auth_sample.log").read_text().splitlines()
        expected = json.loads((DATA / "auth_sample.expected.json").read_text())["lines"]
        assert len(lines) == len(expected)
        for line, (action, outcome, user, target) in zip(lines, expected, strict=True):
            doc = _valid(parse_syslog_line(line, year=2019))
            assert doc["event"]["action"] == action, line
            assert doc["event"]["outcome"] == outcome, line
            assert doc.get("user", {}).get("name") == user, line
            assert doc.get("user", {}).get("target", {}).get("name") == target, line

    def test_sudo_fields(self) -> None:
        """A sudo line yields tty, pwd, target user and the full command."""
        doc = parse_syslog_line(
            "Jul 10 15:13:30 h sudo:    peteb : TTY=pts/0 ; PWD=/home/a b ; USER=root ; COMMAND=/bin/sh -c 'a ; b'",
            year=2019,
        )
        assert doc["secstream"]["syslog"] == {
            "service": "sudo", "tty": "pts/0", "pwd": "/home/a b", "command": "/bin/sh -c 'a ; b'", "result": "success",
        }  # fmt: skip

    def test_sudo_failure_results(self) -> None:
        """Incorrect password attempts and NOT in sudoers are failures with their reason."""
        one = parse_syslog_line(
            "Jul 10 15:13:40 h sudo: a : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=l",
            year=2019,
        )
        two = parse_syslog_line(
            "Jul 10 15:13:41 h sudo: m : user NOT in sudoers ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/sh",
            year=2019,
        )
        assert one["secstream"]["syslog"]["result"] == "3 incorrect password attempts"
        assert two["secstream"]["syslog"]["result"] == "user NOT in sudoers"
        assert one["event"]["outcome"] == two["event"]["outcome"] == "failure"

    def test_pam_session_by_user(self) -> None:
        """PAM opened 'for user root by peteb(uid=0)' records invoker, target, service and uid."""
        doc = parse_syslog_line(
            "Jul 10 15:13:30 h sudo: pam_unix(sudo:session): session opened for user root(uid=0) by peteb(uid=1000)",
            year=2019,
        )
        assert doc["user"] == {"name": "peteb", "target": {"name": "root"}}
        assert doc["secstream"]["syslog"] == {"service": "sudo", "session_user": "root", "by_uid": "1000"}

    def test_ssh_hostname_source(self) -> None:
        """A source that is not an ip stays in source.address/domain, without source.ip."""
        doc = parse_syslog_line(
            "Jul 10 15:13:30 h sshd[1]: Failed password for bob from bad.example port 22 ssh2", year=2019
        )
        assert doc["source"] == {"address": "bad.example", "domain": "bad.example", "port": 22}

    def test_unknown_message_stays_generic(self) -> None:
        """A message nothing recognises keeps action 'log' and is not altered."""
        doc = parse_syslog_line("Jul 10 15:13:30 h kernel: eth0 link up", year=2019)
        assert doc["event"]["action"] == "log" and "user" not in doc
        assert interpret(doc) is doc


class TestLogAnalyticsRows:
    def test_row_fields(self) -> None:
        """A Log Analytics row maps Computer, ProcessName, ProcessID, Facility and SeverityLevel."""
        row = {
            "TimeGenerated": "2019-07-10T15:13:25.813Z", "Computer": "squid", "ProcessName": "sshd", "ProcessID": 17.0,
            "Facility": "authpriv", "SeverityLevel": "info",
            "SyslogMessage": "Accepted password for peteb from 10.0.0.9 port 2222 ssh2",
        }  # fmt: skip
        doc = _valid(syslog_row_to_event(row))
        assert doc["@timestamp"] == "2019-07-10T15:13:25.813Z"
        assert doc["process"] == {"name": "sshd", "pid": 17}
        assert doc["log"]["syslog"]["priority"] == 10 * 8 + 6
        assert doc["event"]["action"] == "ssh_login"

    def test_la_short_time_and_missing_values(self) -> None:
        """'7/8/2019 16:08' times parse; NaN/'null' process ids are dropped; HostName is the fallback host."""
        doc = _valid(syslog_row_to_event({"TimeGenerated": "7/8/2019 16:08", "HostName": "h", "ProcessID": float("nan"),
                                          "ProcessName": "sudo", "SyslogMessage": "x"}))  # fmt: skip
        assert doc["@timestamp"] == "2019-07-08T16:08:00.000Z"
        assert doc["host"]["name"] == "h" and doc["process"] == {"name": "sudo"}

    def test_bad_time_is_parse_error(self) -> None:
        """A row without a readable TimeGenerated raises ParseError."""
        with pytest.raises(ParseError):
            syslog_row_to_event({"TimeGenerated": "yesterday", "SyslogMessage": "x"})
        with pytest.raises(ParseError):
            syslog_row_to_event({"SyslogMessage": "x"})

    def test_reference_rows_all_parse(self, msticpy_testdata: Path) -> None:
        """Every row of msticpy's syslog_data.csv and sudo_session_test.csv becomes a valid document."""
        import polars as pl

        for name in ("syslog_data.csv", "sudo_session_test.csv", "sudo_data.csv"):
            frame = pl.read_csv(msticpy_testdata / name, infer_schema=False)
            docs = [_valid(syslog_row_to_event(row)) for row in frame.iter_rows(named=True)]
            assert len(docs) == frame.height
            distinct = {
                (r["TimeGenerated"], r["Computer"], r["ProcessName"], r["SyslogMessage"])
                for r in frame.iter_rows(named=True)
            }
            assert len({d["event"]["id"] for d in docs}) == len(distinct)


class TestFastPaths:
    @given(
        st.lists(
            st.sampled_from(["TTY=", "PWD=", "USER=", "COMMAND=", " ", ";", " ; ", "\t", "a", "x=", "/b", "\u2003"]),
            max_size=14,
        ).map(lambda parts: "TTY=" + "".join(parts))
    )
    def test_sudo_fields_equal_the_regex_split(self, tail: str) -> None:
        """The sudo KEY=value splitter gives the same fields, in the same order, as splitting with _SUDO_KEYS."""
        parts = _SUDO_KEYS.split(tail)
        expected = {
            key: value.strip() if key != "COMMAND" else value.rstrip()
            for key, value in zip(parts[1::2], parts[2::2], strict=False)
        }
        assert list(_sudo_fields(tail).items()) == list(expected.items())

    def test_fast_and_general_header_paths_agree(self) -> None:
        """A line the one-regex path takes and the same line forced through the general path give one document."""
        line = "<86>Jul 10 15:13:25 h sshd[7]: pam_unix(sshd:session): session opened for user a by (uid=0)"
        fast = parse_syslog_line(line, year=2019)
        general = parse_syslog_line(line.replace("Jul 10 15:13:25", "2019-07-10T15:13:25Z"), year=2019)
        assert fast["@timestamp"] == general["@timestamp"] == "2019-07-10T15:13:25.000Z"
        assert fast["user"] == general["user"] and fast["log"] == general["log"]
        assert fast["event"]["action"] == general["event"]["action"] == "session_opened"
