"""Tests for processors.auditdextract: the msticpy-compatible batch API."""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

from processors import _frames
from processors.auditdextract import (
    extract_events_to_df,
    generate_process_tree,
    get_event_subset,
    read_from_file,
    unpack_auditd,
)
from processors.errors import MsticpyException

IPTABLES_16 = [
    "iptables", "-w", "-t", "security", "-C", "OUTPUT", "-d", "168.63.129.16",
    "-p", "tcp", "-m", "conntrack", "--ctstate", "INVALID,NEW", "-j", "DROP",
]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _polars_output() -> Iterator[None]:
    """These tests read the polars API: ``read_from_file`` returns polars here (pandas is msticpy's default)."""
    with _frames.output_as("polars"):
        yield


@pytest.fixture(scope="module")
def auditd_df(msticpy_testdata: Path) -> pl.DataFrame:
    return read_from_file(str(msticpy_testdata / "auditd_log.txt"))


@pytest.fixture(scope="module")
def la_df(msticpy_testdata: Path) -> pl.DataFrame:
    return extract_events_to_df(pl.from_pandas(pd.read_csv(msticpy_testdata / "linux_events.csv")))


class TestReadFromFile:
    def test_distinct_events(self, auditd_df: pl.DataFrame) -> None:
        """auditd_log.txt holds 938 distinct TIME:SERIAL events (msticpy merges them into 381 by TIME)."""
        assert auditd_df.height == 938
        assert auditd_df["mssg_id"].n_unique() == 938
        assert auditd_df["mssg_id"].str.split(":").list.first().n_unique() == 381

    def test_event_type_counts(self, auditd_df: pl.DataFrame) -> None:
        """Each record type is counted once per event: 146 exec events (msticpy: 78), 187 USER_AUTH."""
        counts = dict(auditd_df["EventType"].value_counts().iter_rows())
        assert counts["SYSCALL_EXECVE"] == 146
        assert counts["USER_AUTH"] == 187
        assert counts["USER_LOGIN"] == 191
        assert counts["USER_START"] == 66
        assert counts["CONFIG_CHANGE"] == 14
        assert sum(counts.values()) == 938

    def test_full_argument_lists(self, auditd_df: pl.DataFrame) -> None:
        """The argc=16 iptables command keeps all 16 arguments and a full cmdline (msticpy keeps a0-a2)."""
        rows = get_event_subset(auditd_df, "SYSCALL_EXECVE").filter(pl.col("argc") == 16)
        assert rows.height > 0
        row = rows.row(0, named=True)
        assert [row[f"a{i}"] for i in range(16)] == IPTABLES_16
        assert row["cmdline"] == " ".join(IPTABLES_16)
        assert row["comm"] == "iptables"

    def test_exec_columns(self, auditd_df: pl.DataFrame) -> None:
        """The exec subset has msticpy's column names (plus comm and the extra args) and typed values."""
        subset = get_event_subset(auditd_df, "SYSCALL_EXECVE")
        expected = set(
            [
                "EventType",
                "mssg_id",
                "TimeGenerated",
                "a0",
                "a1",
                "a2",
                "argc",
                "auid",
                "cmdline",
                "cwd",
                "egid",
                "euid",
                "exe",
                "gid",
                "pid",
                "ppid",
                "proctitle",
                "ses",
                "success",
                "uid",
                "comm",
            ]
        )
        assert expected <= set(subset.columns)
        assert subset.schema["pid"] == pl.Int64
        assert subset.schema["TimeGenerated"] == pl.Datetime("us", "UTC")
        row = subset.filter(pl.col("mssg_id") == "1551487424.869:752").row(0, named=True)
        assert row["a2"] == "iptables --version"
        assert row["proctitle"] == "/bin/sh\x00-c\x00iptables --version"
        assert row["auid"] is None
        assert (row["pid"], row["ppid"], row["exe"]) == (19197, 1305, "/bin/dash")

    def test_user_fields_without_stray_quotes(self, auditd_df: pl.DataFrame) -> None:
        """Nested msg fields come out clean (msticpy: res="success'") and USER_START is typed."""
        row = get_event_subset(auditd_df, "USER_START").row(0, named=True)
        assert row["res"] == "success"
        assert row["acct"] in ("root", "omsagent")
        assert isinstance(row["pid"], int)
        assert not row["msg"].startswith("'")

    def test_event_type_filter(self, msticpy_testdata: Path) -> None:
        """event_type keeps only that type."""
        df = read_from_file(str(msticpy_testdata / "auditd_log.txt"), event_type="USER_CMD")
        assert df.height == 17
        assert set(df["EventType"]) == {"USER_CMD"}

    def test_bad_lines_skipped(self, tmp_path: Path) -> None:
        """Lines that are not audit records are skipped, the rest is read."""
        path = tmp_path / "mixed.log"
        path.write_text(
            "garbage\ntype=USER_AUTH msg=audit(1.5:1): pid=1 msg='op=x acct=\"a\" res=success'\n\n",
            encoding="utf-8",
        )
        df = read_from_file(str(path), verbose=True)
        assert df.height == 1
        assert df["acct"].to_list() == ["a"]

    def test_node_prefix_column(self, tmp_path: Path) -> None:
        """node= gives node and Computer columns; same key on two nodes gives two events."""
        path = tmp_path / "nodes.log"
        line = "type=USER_AUTH msg=audit(1.5:1): pid=1 msg='op=x res=success'"
        path.write_text(f"node=a {line}\nnode=b {line}\n", encoding="utf-8")
        df = read_from_file(str(path))
        assert sorted(df["Computer"].to_list()) == ["a", "b"]


class TestExtractEventsToDf:
    def test_log_analytics_rows(self, la_df: pl.DataFrame) -> None:
        """linux_events.csv gives 100 events, 82 SYSCALL_EXECVE, with the expected event types."""
        assert la_df.height == 100
        counts = dict(la_df["EventType"].value_counts().iter_rows())
        assert counts == {"SYSCALL_EXECVE": 82, "USER_END": 4, "CRED_DISP": 4, "USER_START": 3, "USER_CMD": 2,
                          "CRED_REFR": 2, "USER_ACCT": 1, "CRED_ACQ": 1, "LOGIN": 1}  # fmt: skip

    def test_log_analytics_exec_rows(self, la_df: pl.DataFrame) -> None:
        """Exec rows have Computer, a TimeGenerated from mssg_id, exe, cmdline and cwd."""
        subset = get_event_subset(la_df, "SYSCALL_EXECVE")
        assert subset.height == 82
        row = subset.filter(pl.col("mssg_id") == "1550505632.285:9077924").row(0, named=True)
        assert row["Computer"] == "MSTICAlertsLxVM2"
        assert row["cmdline"] == "/bin/sh -c iptables --version"
        assert (row["a0"], row["a1"], row["a2"], row["argc"]) == ("/bin/sh", "-c", "iptables --version", 3)
        assert (row["pid"], row["ppid"], row["uid"], row["exe"]) == (28066, 22536, 0, "/bin/dash")
        assert str(row["TimeGenerated"]).startswith("2019-02-18 16:00:32.285")
        assert subset.head(19).select(["Computer", "exe", "cmdline", "cwd"]).null_count().row(0) == (0, 0, 0, 0)

    def test_login_row(self, la_df: pl.DataFrame) -> None:
        """LOGIN keeps all its fields (msticpy stops at the first missing one)."""
        row = get_event_subset(la_df, "LOGIN").row(0, named=True)
        assert (row["pid"], row["uid"], row["ses"], row["res"]) == (28097, 0, 196095, "1")
        assert row.get("old-ses") is None
        assert row["auid"] == 0

    def test_literal_eval_lists_and_polars_input(self, msticpy_testdata: Path) -> None:
        """Pre-parsed lists and polars input give the same result as the CSV text; pandas in, pandas out."""
        frame = pd.read_csv(msticpy_testdata / "linux_events.csv")
        parsed = frame.copy()
        parsed["AuditdMessage"] = parsed["AuditdMessage"].apply(ast.literal_eval)
        from_lists = extract_events_to_df(parsed)
        from_polars = extract_events_to_df(pl.from_pandas(frame))
        baseline = extract_events_to_df(frame)
        assert isinstance(baseline, pd.DataFrame)
        assert isinstance(from_polars, pl.DataFrame)
        pd.testing.assert_frame_equal(from_lists, baseline)
        pd.testing.assert_frame_equal(_frames.to_pandas(from_polars.select(list(baseline.columns))), baseline)

    def test_raw_line_column_is_coalesced(self, msticpy_testdata: Path) -> None:
        """A column of raw lines is coalesced into events (msticpy treats each line as an event)."""
        lines = (msticpy_testdata / "auditd_log.txt").read_text(encoding="utf-8").splitlines()
        df = extract_events_to_df(pl.DataFrame({"AuditdMessage": lines}))
        assert df.height == 938

    def test_missing_column(self) -> None:
        """A missing input column raises MsticpyException."""
        with pytest.raises(MsticpyException):
            extract_events_to_df(pl.DataFrame({"x": ["a"]}))


class TestUnpackAuditd:
    def test_unpack_decodes_and_keeps_repeats(self) -> None:
        """Hex is decoded, quotes removed, repeated types kept as TYPE_2 (msticpy keeps only the last)."""
        out = unpack_auditd(
            [
                {"EXECVE": ["argc=3", 'a0="/bin/sh"', 'a1="-c"', "a2=69707461626C6573202D2D76657273696F6E"]},
                {"PATH": ["item=0", 'name="/bin/sh"']},
                {"PATH": ["item=1", 'name="/lib64/ld.so"']},
                {"USER_CMD": ["pid=1", 'msg=\'cwd="/"', "cmd=6C73", "res=success'"]},
            ]
        )
        assert out["EXECVE"]["a2"] == "iptables --version"
        assert out["PATH"]["name"] == "/bin/sh"
        assert out["PATH_2"]["name"] == "/lib64/ld.so"
        assert out["USER_CMD"]["cmd"] == "ls"
        assert out["USER_CMD"]["res"] == "success"


class TestProcessTree:
    def test_generate_process_tree(self, la_df: pl.DataFrame) -> None:
        """The exec events of linux_events.csv give 85 processes and depth 5, as msticpy."""
        pytest.importorskip("processors.proc_tree_builder")
        from processors.process_tree_utils import get_summary_info

        tree = generate_process_tree(get_event_subset(la_df, "SYSCALL_EXECVE"))
        summary = get_summary_info(tree)
        assert summary["Processes"] >= 85
        assert summary["LargestTreeDepth"] == 5


@pytest.mark.reference
class TestAgainstMsticpy:
    def test_exec_subset_matches_where_msticpy_is_right(self, msticpy_testdata: Path, auditd_df: pl.DataFrame) -> None:
        """On exec events msticpy did not merge, a0-a2, pid, ppid, exe and cwd agree with msticpy."""
        module: Any = pytest.importorskip("msticpy.transform.auditdextract")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = module.read_from_file(str(msticpy_testdata / "auditd_log.txt"))
        ref_exec = reference[reference["EventType"] == "SYSCALL_EXECVE"]
        assert len(reference) == 381
        ours = get_event_subset(auditd_df, "SYSCALL_EXECVE").with_columns(
            pl.col("mssg_id").str.split(":").list.first().alias("time")
        )
        per_time = auditd_df.select(pl.col("mssg_id").str.split(":").list.first().alias("time")).group_by("time").len()
        single = set(per_time.filter(pl.col("len") == 1)["time"].to_list())
        compared = 0
        for _, ref in ref_exec.iterrows():
            if ref["mssg_id"] not in single:
                continue
            mine = ours.filter(pl.col("time") == ref["mssg_id"]).row(0, named=True)
            for column in ("a0", "a1", "a2", "exe", "cwd"):
                if isinstance(ref[column], str):
                    assert mine[column] == ref[column], column
            assert mine["pid"] == int(ref["pid"])
            assert mine["ppid"] == int(ref["ppid"])
            compared += 1
        assert compared >= 10


class TestClashingFields:
    def test_clashing_fields_get_type_suffix(self, tmp_path: Path) -> None:
        """Fields of a later record that clash get the _<TYPE> suffix and keep their type."""
        path = tmp_path / "clash.log"
        path.write_text(
            'type=SYSCALL msg=audit(1.5:1): arch=c000003e syscall=2 success=yes pid=10 uid=0 comm="cat"\n'
            'type=CWD msg=audit(1.5:1): cwd="/"\n'
            "type=OBJ_PID msg=audit(1.5:1): opid=11 pid=12 uid=1000\n"
            "type=EOE msg=audit(1.5:1): \n",
            encoding="utf-8",
        )
        row = read_from_file(str(path)).row(0, named=True)
        assert (row["EventType"], row["pid"], row["pid_OBJ_PID"], row["uid_OBJ_PID"]) == ("SYSCALL", 10, 12, 1000)
