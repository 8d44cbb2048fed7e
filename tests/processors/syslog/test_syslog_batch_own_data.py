"""The syslog batch API (cmd_line, syslog_utils) on frames we wrote ourselves, so that a fresh clone
(without msticpy's test data in ../shared) still tests risky commands, command speed and sudo sessions."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from processors.cmd_line import cmd_speed, risky_cmd_line
from processors.errors import MsticpyException
from processors.syslog_utils import cluster_syslog_logons_df, risky_sudo_sessions


def _sudo_frame() -> pd.DataFrame:
    """Two sudo sessions of one user; the second runs /bin/bash and two commands within a second."""
    rows = [
        ("02:00:00", "pam_unix(sudo:session): session opened for user root by alice(uid=1000)", None),
        ("02:00:01", "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id", "/usr/bin/id"),
        ("02:00:05", "pam_unix(sudo:session): session closed for user root", None),
        ("02:10:00", "pam_unix(sudo:session): session opened for user root by alice(uid=1000)", None),
        ("02:10:01", "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash", "/bin/bash"),
        ("02:10:01", "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/whoami", "/usr/bin/whoami"),
        ("02:10:09", "pam_unix(sudo:session): session closed for user root", None),
    ]
    return pd.DataFrame(
        {
            "TimeGenerated": [pd.Timestamp(f"2026-07-15 {time}") for time, _m, _c in rows],
            "Computer": ["lab1"] * len(rows),
            "ProcessName": ["sudo"] * len(rows),
            "ProcessID": [4242] * len(rows),
            "SyslogMessage": [message for _t, message, _c in rows],
            "Command": [command for _t, _m, command in rows],
        }
    )


class TestSudoSessions:
    def test_risky_command_speed_and_sessions(self) -> None:
        events = _sudo_frame()
        risky = risky_cmd_line(events=events, log_type="Syslog")
        assert list(risky.values()) == ["/bin/bash"]
        speed = cmd_speed(cmd_events=events, time=60, events=1, cmd_field="Command")
        assert [next(iter(hit)) for hit in speed] == [1]  # bash and whoami in the same second
        sessions = cluster_syslog_logons_df(logon_events=events)
        # pandas in, pandas out (msticpy's shape)
        assert list(sessions[["User", "Start", "End"]].itertuples(index=False, name=None)) == [
            ("alice", datetime(2026, 7, 15, 2, 0, 0), datetime(2026, 7, 15, 2, 0, 5)),
            ("alice", datetime(2026, 7, 15, 2, 10, 0), datetime(2026, 7, 15, 2, 10, 9)),
        ]
        flagged = risky_sudo_sessions(risky_actions=risky, sudo_sessions=sessions, suspicious_actions=speed)
        assert set(flagged) == {1}

    def test_a_missing_command_field_raises(self) -> None:
        with pytest.raises(MsticpyException, match="does not contain the Test field"):
            risky_cmd_line(_sudo_frame(), log_type="Syslog", cmd_field="Test")
