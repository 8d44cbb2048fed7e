"""A msticpy notebook, with only its imports changed, on secstream: frame type in = frame type out.

Each seed module is used the way msticpy's documentation and notebooks use it, once with pandas input and
once with polars input; the output's type and shape are checked. Pandas results follow msticpy's
conventions (index labels, ``NaN`` for missing values, a process tree indexed by ``proc_key``). The data
are small fixtures written here.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from processors import _frames
from processors import auditdextract as audit
from processors import base64unpack as b64
from processors import cmd_line as cl
from processors import proc_tree_build_mde as mde
from processors import proc_tree_build_winlx as winlx
from processors import proc_tree_builder as ptree
from processors import process_tree_utils as pt_util
from processors import syslog_utils as ls
from processors.entities import Host
from processors.errors import MsticpyException
from processors.iocextract import IoCExtract
from processors.proc_tree_schema import LX_EVENT_SCH, MDE_EVENT_SCH

REPO = Path(__file__).resolve().parents[3]
KINDS = ("pandas", "polars")
FrameType = {"pandas": pd.DataFrame, "polars": pl.DataFrame}


def make(kind: str, data: dict[str, list[Any]], index: list[Any] | None = None) -> Any:
    """A frame of ``kind`` (pandas with ``index`` labels when given)."""
    if kind == "pandas":
        return pd.DataFrame(data, index=index)
    return pl.DataFrame(data)


def column(frame: Any, name: str) -> list[Any]:
    return list(frame[name].tolist() if isinstance(frame, pd.DataFrame) else frame[name].to_list())


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ----------------------------------------------------------------------------------------------- data

HELLO = base64.b64encode(b"hello world, this is a decoded payload").decode()
AUDIT_LINES = [
    "node=h1 type=SYSCALL msg=audit(1700000000.100:11): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=100 "
    'auid=1000 uid=0 gid=0 euid=0 ses=3 comm="bash" exe="/bin/bash"',
    'node=h1 type=EXECVE msg=audit(1700000000.100:11): argc=2 a0="bash" a1="-i"',
    'node=h1 type=CWD msg=audit(1700000000.100:11): cwd="/root"',
    "node=h1 type=SYSCALL msg=audit(1700000001.200:12): arch=c000003e syscall=59 success=yes exit=0 ppid=100 pid=101 "
    'auid=1000 uid=0 gid=0 euid=0 ses=3 comm="curl" exe="/usr/bin/curl"',
    'node=h1 type=EXECVE msg=audit(1700000001.200:12): argc=2 a0="curl" a1="http://198.51.100.7/x"',
    'node=h1 type=CWD msg=audit(1700000001.200:12): cwd="/root"',
    "node=h1 type=USER_LOGIN msg=audit(1700000002.300:13): pid=200 uid=0 auid=1000 ses=3 "
    'msg=\'op=login acct="alice" exe="/usr/sbin/sshd" hostname=? addr=203.0.113.5 terminal=ssh res=success\'',
]
SUDO_TIMES = [f"2024-03-01T10:00:{second:02d}Z" for second in (0, 1, 2, 3, 10, 30)]
SUDO_MESSAGES = [
    "pam_unix(sudo:session): session opened for user root by alice(uid=0)",
    "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash",
    "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
    "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/whoami",
    "pam_unix(sudo:session): session closed for user root",
    "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls",
]
SUDO_COMMANDS = ["", "/bin/bash", "/usr/bin/id", "/usr/bin/whoami", "", "/bin/ls"]


def sudo_events(kind: str, parse_times: bool = True) -> Any:
    times: list[Any] = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in SUDO_TIMES]
    if not parse_times:
        times = SUDO_TIMES
    data = {
        "TimeGenerated": times,
        "Computer": ["h1"] * 6,
        "ProcessName": ["sudo"] * 6,
        "ProcessID": [500] * 6,
        "SyslogMessage": SUDO_MESSAGES,
        "Command": SUDO_COMMANDS,
    }
    return make(kind, data, index=[f"r{i}" for i in range(6)])


def lx_processes(kind: str) -> Any:
    """Four auditd exec events: init → bash → (curl, id)."""
    data = {
        "Computer": ["h1"] * 4,
        "EventType": ["SYSCALL_EXECVE"] * 4,
        "pid": [1, 100, 101, 102],
        "ppid": [0, 1, 100, 100],
        "exe": ["/sbin/init", "/bin/bash", "/usr/bin/curl", "/usr/bin/id"],
        "cmdline": ["init", "bash -i", "curl http://198.51.100.7/x", "id"],
        "ses": [1, 3, 3, 3],
        "uid": [0, 0, 0, 0],
        "acct": ["root"] * 4,
        "TimeGenerated": [datetime(2024, 3, 1, 10, 0, s) for s in (0, 1, 2, 3)],
    }
    return make(kind, data, index=[10, 11, 12, 13])


# ----------------------------------------------------------------------------------------------- iocextract


class TestIocExtract:
    def test_string_gives_defaultdict_of_sets(self) -> None:
        """As msticpy: ``defaultdict(set)``, so a type that was not found indexes to an empty set."""
        found = IoCExtract().extract("curl http://198.51.100.7/x from 203.0.113.5")
        assert isinstance(found, defaultdict)
        assert found["ipv4"] == {"198.51.100.7", "203.0.113.5"}
        assert found["md5_hash"] == set()

    def test_dataframe(self, kind: str) -> None:
        data = make(kind, {"cmd": ["ping 203.0.113.5", "nothing", "see 198.51.100.7"]}, index=["a", "b", "c"])
        results = [
            IoCExtract().extract(data=data, columns=["cmd"], ioc_types=["ipv4"]),
            IoCExtract().extract_df(data, ["cmd"], ioc_types=["ipv4"]),
        ]
        if kind == "polars":
            results.append(data.mp_ioc.extract(columns=["cmd"], ioc_types=["ipv4"]))
        for out in results:
            assert isinstance(out, FrameType[kind])
            assert out.shape == (2, 4)
            assert column(out, "SourceIndex") == (["a", "c"] if kind == "pandas" else [0, 2])
            if kind == "pandas":
                assert list(out.index) == [0, 1]  # a fresh RangeIndex, as msticpy's


# ----------------------------------------------------------------------------------------------- base64unpack


class TestBase64Unpack:
    def test_string_default_is_pandas_and_switchable(self) -> None:
        """No frame in: msticpy's documented pandas; polars after the documented switch."""
        text = f"echo {HELLO} | base64 -d"
        decoded, frame = b64.unpack(input_string=text)
        assert isinstance(frame, pd.DataFrame) and frame.shape == (1, 12)
        assert "hello world" in decoded
        with _frames.output_as("polars"):
            _, frame = b64.unpack_items(input_string=text)
        assert isinstance(frame, pl.DataFrame) and frame.shape == (1, 12)

    def test_empty_result_keeps_the_columns(self) -> None:
        _, frame = b64.unpack("nothing to decode")
        assert isinstance(frame, pd.DataFrame) and frame.shape == (0, 12)

    def test_dataframe(self, kind: str) -> None:
        data = make(kind, {"input": [f"x {HELLO}", "plain", f"y {HELLO}"]}, index=[7, 8, 9])
        for out in (b64.unpack_df(data, "input"), b64.unpack_items(data=data, column="input")):
            assert isinstance(out, FrameType[kind])
            assert out.shape == (2, 15)
            assert column(out, "src_index") == ([7, 9] if kind == "pandas" else [0, 2])
            assert column(out, "decoded_string") == ["hello world, this is a decoded payload"] * 2


# ----------------------------------------------------------------------------------------------- auditdextract


class TestAuditdExtract:
    def test_read_from_file_default_is_pandas(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.log"
        path.write_text("\n".join(AUDIT_LINES) + "\n")
        events = audit.read_from_file(str(path))
        assert isinstance(events, pd.DataFrame)
        assert len(events) == 3
        execs = audit.get_event_subset(events, "SYSCALL_EXECVE")
        assert isinstance(execs, pd.DataFrame) and len(execs) == 2
        assert list(execs.index) == [0, 1]  # the input's labels, as msticpy's row filter
        with _frames.output_as("polars"):
            assert isinstance(audit.read_from_file(str(path)), pl.DataFrame)

    def test_extract_events_subset_and_tree(self, kind: str) -> None:
        data = make(kind, {"AuditdMessage": AUDIT_LINES})
        events = audit.extract_events_to_df(data)
        assert isinstance(events, FrameType[kind])
        assert len(events) == 3 and {"EventType", "TimeGenerated", "cmdline"} <= set(events.columns)
        execs = audit.get_event_subset(events, "SYSCALL_EXECVE")
        assert isinstance(execs, FrameType[kind]) and len(execs) == 2
        assert column(execs, "cmdline") == ["bash -i", "curl http://198.51.100.7/x"]
        tree = audit.generate_process_tree(execs)
        assert isinstance(tree, FrameType[kind])
        assert pt_util.get_summary_info(tree)["Processes"] == 3  # bash, curl and bash's inferred parent

    def test_pandas_missing_values_are_nan(self) -> None:
        """msticpy's convention: NaN in gaps, never None; integer columns with gaps are float64."""
        events = audit.extract_events_to_df(pd.DataFrame({"AuditdMessage": AUDIT_LINES}))
        login = events[events["EventType"] == "USER_LOGIN"].iloc[0]
        assert isinstance(login["cwd"], float) and np.isnan(login["cwd"])
        assert events["ppid"].dtype == np.float64


# ----------------------------------------------------------------------------------------------- cmd_line


class TestCmdLine:
    def test_risky_cmd_line(self, kind: str) -> None:
        events = sudo_events(kind, parse_times=False)
        risky = cl.risky_cmd_line(events=events, log_type="Syslog")
        assert isinstance(risky, dict)
        assert risky == {"2024-03-01T10:00:01Z": "/bin/bash"}
        assert isinstance(risky.matches, FrameType[kind])

    def test_cmd_speed(self, kind: str) -> None:
        hits = cl.cmd_speed(cmd_events=sudo_events(kind), cmd_field="Command", time=5, events=2)
        assert len(hits) == 1
        ((start, (rows, delta)),) = hits[0].items()
        assert start == 0 and delta == timedelta(seconds=2)
        assert isinstance(rows, FrameType[kind]) and len(rows) == 3
        if kind == "pandas":  # msticpy's layout: positions among the commands, the input's labels in "index"
            assert list(rows.index) == [0, 1, 2]
            assert rows["index"].tolist() == ["r1", "r2", "r3"]

    def test_missing_field_raises_msticpy_exception(self, kind: str) -> None:
        with pytest.raises(MsticpyException):
            cl.risky_cmd_line(events=sudo_events(kind), log_type="Syslog", cmd_field="Nope")


# ----------------------------------------------------------------------------------------------- syslog_utils


class TestSyslogUtils:
    def test_sessions_and_risky_sessions(self, kind: str) -> None:
        events = sudo_events(kind)
        sessions = ls.cluster_syslog_logons_df(events)
        assert isinstance(sessions, FrameType[kind])
        assert sessions.shape == (1, 5)
        risky = cl.risky_cmd_line(events=events, log_type="Syslog")
        speed = cl.cmd_speed(cmd_events=events, cmd_field="Command", time=5, events=2)
        out = ls.risky_sudo_sessions(sudo_sessions=sessions, risky_actions=risky, suspicious_actions=speed)
        assert out == {0: "Suspicious event pattern"}
        with pytest.raises(MsticpyException):
            ls.risky_sudo_sessions(sudo_sessions=sessions)

    def test_host_record_and_ip_entities(self, kind: str) -> None:
        syslog = make(kind, {"Computer": ["h1"], "ProcessName": ["nginx"], "TimeGenerated": ["2024-03-01T10:00:00Z"]})
        heartbeat = make(kind, {"OSType": ["Linux"], "ComputerIP": ["203.0.113.5"], "OSMajorVersion": ["22"]})
        host = ls.create_host_record(syslog, heartbeat)
        assert type(host) is Host  # secstream's entity: the import a migrated notebook changes
        assert host.OSType == "Linux" and host.Applications == ["nginx"]
        ips = ls.convert_to_ip_entities(data=make(kind, {"ip": ["203.0.113.5, 198.51.100.7"]}), ip_col="ip")
        assert [ip.Address for ip in ips] == ["203.0.113.5", "198.51.100.7"]


# ----------------------------------------------------------------------------------------------- process trees


class TestProcessTree:
    @pytest.fixture
    def tree(self, kind: str) -> Any:
        return ptree.build_process_tree(lx_processes(kind), schema=LX_EVENT_SCH)

    def test_build(self, kind: str, tree: Any) -> None:
        assert isinstance(tree, FrameType[kind])
        assert len(tree) == 5  # four events and init's inferred parent
        if kind == "pandas":
            assert tree.index.name == "proc_key" and "proc_key" not in tree.columns
        else:
            assert "proc_key" in tree.columns
        assert ptree.infer_schema(tree) == LX_EVENT_SCH

    def test_every_util_accepts_the_tree(self, kind: str, tree: Any) -> None:
        """All process_tree_utils functions take a tree of either type and answer in that type."""
        row: Callable[[Any, int], Any] = (
            (lambda f, i: f.iloc[i]) if kind == "pandas" else (lambda f, i: f.row(i, named=True))
        )
        roots = pt_util.get_roots(tree)
        assert isinstance(roots, FrameType[kind]) and len(roots) == 1
        root = row(roots, 0)  # init's inferred parent (pid 0)
        assert len(pt_util.get_descendents(tree, root)) == 5
        children = pt_util.get_children(tree, root, include_source=False)
        assert isinstance(children, FrameType[kind]) and len(children) == 1
        init = row(children, 0)
        bash = row(pt_util.get_children(tree, init, include_source=False), 0)
        curl = row(pt_util.get_children(tree, bash, include_source=False), 0)
        single = (pd.Series, dict)[kind == "polars"]
        for found in (pt_util.get_process(tree, curl), pt_util.get_parent(tree, curl), pt_util.get_root(tree, curl)):
            assert isinstance(found, single)
        key = curl.name if kind == "pandas" else curl["proc_key"]
        assert isinstance(pt_util.get_process(tree, key), single)
        if kind == "pandas":
            assert (pt_util.get_process(tree, curl).dropna() == curl.dropna()).all()
        assert len(pt_util.get_ancestors(tree, curl)) == 4
        assert len(pt_util.get_siblings(tree, curl)) == 2
        assert len(pt_util.get_siblings(tree, curl, include_source=False)) == 1
        assert len(pt_util.get_root_tree(tree, curl)) == 5
        assert pt_util.get_tree_depth(tree) == 4
        assert pt_util.get_summary_info(tree)["LeafProcesses"] == 2
        first = str(column(tree.reset_index() if kind == "pandas" else tree, "source_index")[0])
        assert pt_util.get_process_key(tree, first) in column(
            tree.reset_index() if kind == "pandas" else tree, "proc_key"
        )
        assert "/usr/bin/curl" in pt_util.tree_to_text(tree, schema=LX_EVENT_SCH)

    def test_winlx_and_mde_builders(self, kind: str) -> None:
        extracted = winlx.extract_process_tree(lx_processes(kind), schema=LX_EVENT_SCH)
        assert isinstance(extracted, FrameType[kind]) and len(extracted) == 5
        mde_events = make(
            kind,
            {
                "Timestamp": [datetime(2024, 3, 1, 10, 0, 1)],
                "DeviceName": ["h1"],
                "FileName": ["cmd.exe"],
                "FolderPath": ["c:\\windows\\system32\\cmd.exe"],
                "ProcessId": [200],
                "ProcessCommandLine": ["cmd /c whoami"],
                "ProcessCreationTime": [datetime(2024, 3, 1, 10, 0, 1)],
                "InitiatingProcessFileName": ["explorer.exe"],
                "InitiatingProcessFolderPath": ["c:\\windows\\explorer.exe"],
                "InitiatingProcessId": [100],
                "InitiatingProcessCreationTime": [datetime(2024, 3, 1, 9, 0, 0)],
                "InitiatingProcessParentId": [4],
                "InitiatingProcessParentFileName": ["userinit.exe"],
                "InitiatingProcessParentCreationTime": [datetime(2024, 3, 1, 8, 0, 0)],
                "AccountName": ["alice"],
                "AccountSid": ["S-1-5-21"],
                "InitiatingProcessLogonId": [1],
                "LogonId": [1],
                "InitiatingProcessCommandLine": ["explorer.exe"],
                "InitiatingProcessAccountName": ["alice"],
                "InitiatingProcessAccountSid": ["S-1-5-21"],
            },
        )
        internal = mde.convert_mde_schema_to_internal(mde_events, schema=MDE_EVENT_SCH)
        assert isinstance(internal, FrameType[kind]) and len(internal) == 1
        tree = ptree.build_process_tree(mde_events, schema=MDE_EVENT_SCH)
        assert isinstance(tree, FrameType[kind]) and len(tree) == 3  # cmd, explorer and userinit


# ----------------------------------------------------------------------------------------------- vs msticpy


def _reference(module: str) -> Any:
    pytest.importorskip("msticpy")
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(module)


@pytest.mark.reference
class TestPandasConventionsMatchMsticpy:
    """On the same pandas input, secstream's pandas output is laid out as msticpy 3's."""

    def test_extract_df(self) -> None:
        theirs_mod = _reference("msticpy.transform.iocextract")
        data = make("pandas", {"cmd": ["ping 203.0.113.5", "nothing", "see 198.51.100.7"]}, index=["a", "b", "c"])
        ours = IoCExtract().extract_df(data, ["cmd"], ioc_types=["ipv4"])
        theirs = theirs_mod.IoCExtract().extract_df(data, ["cmd"], ioc_types=["ipv4"])
        pd.testing.assert_frame_equal(ours, theirs)

    def test_unpack_df(self) -> None:
        theirs_mod = _reference("msticpy.transform.base64unpack")
        data = make("pandas", {"input": [f"x {HELLO}", "plain", f"y {HELLO}"]}, index=[7, 8, 9])
        ours, theirs = b64.unpack_df(data, "input"), theirs_mod.unpack_df(data, "input")
        assert list(ours.columns) == list(theirs.columns)
        assert list(ours.index) == list(theirs.index)
        for name in ("src_index", "decoded_string", "md5", "full_decoded_string"):
            assert ours[name].tolist() == theirs[name].tolist(), name

    def test_audit_events_and_subset(self) -> None:
        """Log Analytics rows: same index, same exec columns, same time dtype, NaN where msticpy has NaN."""
        theirs_mod = _reference("msticpy.transform.auditdextract")
        data = pd.DataFrame(
            {
                "TenantId": ["t"] * 3,
                "TimeGenerated": ["2024-01-01"] * 3,
                "Computer": ["h1"] * 3,
                "mssg_id": ["1700000000.100:1", "1700000001.100:2", "1700000002.100:3"],
                "AuditdMessage": [
                    [
                        {"SYSCALL": ["success=yes", "ppid=1", "pid=100", "uid=0", "ses=3", 'exe="/bin/bash"']},
                        {"EXECVE": ["argc=2", 'a0="bash"', 'a1="-i"']},
                        {"CWD": ['cwd="/root"']},
                    ],
                    [{"LOGIN": ["pid=200", "uid=0", "tty=(none)", "ses=3", "res=1"]}],
                    [
                        {"SYSCALL": ["success=yes", "ppid=100", "pid=101", "uid=0", "ses=3", 'exe="/usr/bin/id"']},
                        {"EXECVE": ["argc=1", 'a0="id"']},
                        {"CWD": ['cwd="/root"']},
                    ],
                ],
            }
        )
        ours, theirs = audit.extract_events_to_df(data), theirs_mod.extract_events_to_df(data.copy())
        assert list(ours.index) == list(theirs.index)
        assert ours["TimeGenerated"].dtype == theirs["TimeGenerated"].dtype
        pd.testing.assert_series_equal(ours["ppid"], theirs["ppid"])  # float64 with NaN for the LOGIN row
        mine = audit.get_event_subset(ours, "SYSCALL_EXECVE")
        ref = theirs_mod.get_event_subset(theirs, "SYSCALL_EXECVE")
        assert list(mine.index) == list(ref.index) == [0, 2]
        assert set(ref.columns) < set(mine.columns)  # D1: msticpy stops at the first missing SYSCALL field

    def test_cmd_speed_burst_rows(self) -> None:
        theirs_mod = _reference("msticpy.transform.cmd_line")
        events = sudo_events("pandas")
        ours = cl.cmd_speed(cmd_events=events, cmd_field="Command", time=5, events=2)
        theirs = theirs_mod.cmd_speed(cmd_events=events.copy(), cmd_field="Command", time=5, events=2)
        assert [list(hit) for hit in ours] == [list(hit) for hit in theirs]
        for mine, ref in zip(ours, theirs, strict=True):
            ((rows, _),) = mine.values()
            ((ref_rows, _),) = ref.values()
            assert list(rows.columns) == list(ref_rows.columns)
            assert list(rows.index)[: len(ref_rows)] == list(ref_rows.index)  # msticpy's slice is one row short
            assert rows["index"].tolist()[: len(ref_rows)] == ref_rows["index"].tolist()

    def test_sessions(self) -> None:
        theirs_mod = _reference("msticpy.analysis.syslog_utils")
        events = sudo_events("pandas")
        ours, theirs = ls.cluster_syslog_logons_df(events), theirs_mod.cluster_syslog_logons_df(events.copy())
        assert list(theirs.columns) == list(ours.columns)[: len(theirs.columns)]
        assert list(ours.index) == list(theirs.index)
        assert ours["Start"].dtype.kind == theirs["Start"].dtype.kind == "M"


# ----------------------------------------------------------------------------------------------- exceptions


def _run(script: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class TestExceptions:
    @pytest.mark.reference
    def test_msticpy_except_clause_catches_ours(self) -> None:
        """With msticpy imported, ``except msticpy...MsticpyException`` catches secstream's exception."""
        pytest.importorskip("msticpy.common.exceptions")
        out = _run(
            """
            import pandas as pd
            from msticpy.common.exceptions import MsticpyException
            import processors.errors
            from processors import syslog_utils
            try:
                syslog_utils.risky_sudo_sessions(sudo_sessions=pd.DataFrame({"Start": [], "End": []}))
            except MsticpyException as exc:
                assert isinstance(exc, processors.errors.MsticpyException)
                assert isinstance(exc, processors.errors.SecstreamError)
                print("caught")
            """
        )
        assert out == "caught"

    def test_stream_does_not_import_msticpy(self) -> None:
        """Importing the stream graph (and raising our exception) never imports msticpy."""
        out = _run(
            """
            import sys
            import streams.graph
            from processors.errors import MsticpyException
            try:
                raise MsticpyException("x")
            except MsticpyException:
                pass
            print(sorted(m for m in sys.modules if m.split(".")[0] == "msticpy"))
            """
        )
        assert out == "[]"


@pytest.fixture(autouse=True)
def _default_output() -> Iterator[None]:
    """Every test starts from msticpy's default (pandas for functions that take no frame)."""
    with _frames.output_as("pandas"):
        yield
