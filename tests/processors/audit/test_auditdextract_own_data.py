"""The msticpy-compatible audit batch API on data we wrote ourselves, so that a fresh clone (without
msticpy's test data in ../shared) still tests reading, coalescing, decoding and the process tree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from processors import _frames
from processors.auditdextract import extract_events_to_df, generate_process_tree, get_event_subset, read_from_file

DATA = Path(__file__).resolve().parents[2] / "data" / "audit" / "batch_small.log"
IPTABLES_16 = [
    "iptables", "-w", "-t", "security", "-C", "OUTPUT", "-d", "10.9.8.7",
    "-p", "tcp", "-m", "conntrack", "--ctstate", "INVALID,NEW", "-j", "DROP",
]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _polars_output() -> Iterator[None]:
    """These tests read the polars API (pandas is msticpy's default output)."""
    with _frames.output_as("polars"):
        yield


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return read_from_file(str(DATA))


class TestReadFromFile:
    def test_one_row_per_node_time_and_serial(self, frame: pl.DataFrame) -> None:
        """Six events: three execs, USER_START and the same USER_CMD key on two nodes (two events)."""
        assert frame.height == 6
        counts = dict(frame["EventType"].value_counts().iter_rows())
        assert counts == {"SYSCALL_EXECVE": 3, "USER_START": 1, "USER_CMD": 2}
        assert sorted(frame.filter(pl.col("EventType") == "USER_CMD")["Computer"].to_list()) == ["lab1", "lab2"]

    def test_arguments_across_execve_records(self, frame: pl.DataFrame) -> None:
        """argc=16 split over two EXECVE records keeps all sixteen arguments and the full command line."""
        row = get_event_subset(frame, "SYSCALL_EXECVE").filter(pl.col("argc") == 16).row(0, named=True)
        assert [row[f"a{i}"] for i in range(16)] == IPTABLES_16
        assert row["cmdline"] == " ".join(IPTABLES_16)

    def test_hex_values_and_types(self, frame: pl.DataFrame) -> None:
        subset = get_event_subset(frame, "SYSCALL_EXECVE")
        assert subset.schema["pid"] == pl.Int64
        assert subset.schema["TimeGenerated"] == pl.Datetime("us", "UTC")
        row = subset.filter(pl.col("pid") == 102).row(0, named=True)
        assert row["a2"] == "iptables --version"
        assert row["proctitle"] == "/bin/sh\x00-c\x00iptables --version"
        assert (row["ppid"], row["exe"]) == (101, "/usr/bin/dash")
        cmd = get_event_subset(frame, "USER_CMD").filter(pl.col("Computer") == "lab1").row(0, named=True)
        assert cmd["cmd"] == "ls -la"
        assert cmd["res"] == "success"

    def test_event_type_filter(self) -> None:
        assert read_from_file(str(DATA), event_type="USER_CMD").height == 2


class TestExtractEventsToDf:
    def test_raw_lines_in_a_column_are_coalesced(self, frame: pl.DataFrame) -> None:
        lines = DATA.read_text(encoding="utf-8").splitlines()
        from_column = extract_events_to_df(pl.DataFrame({"AuditdMessage": lines}))
        assert from_column.height == frame.height

    def test_log_analytics_shaped_rows(self) -> None:
        """Rows as Log Analytics stores them: one event per row, its records as {type: [fields]} dicts."""
        rows = pd.DataFrame(
            {
                "Computer": ["lab1"],
                "AuditdMessage": [
                    "[{'SYSCALL': ['syscall=59', 'pid=5', 'ppid=1', 'uid=0', 'exe=\"/bin/ls\"', 'comm=\"ls\"']},"
                    " {'EXECVE': ['argc=2', 'a0=\"ls\"', 'a1=\"-l\"']}, {'CWD': ['cwd=\"/tmp\"']}]"
                ],
                "mssg_id": ["1795766400.5:77"],
            }
        )
        out = extract_events_to_df(pl.from_pandas(rows))
        row = get_event_subset(out, "SYSCALL_EXECVE").row(0, named=True)
        assert (row["Computer"], row["pid"], row["cmdline"], row["cwd"]) == ("lab1", 5, "ls -l", "/tmp")
        assert str(row["TimeGenerated"]).startswith("2026-11-27")


class TestProcessTree:
    def test_three_generations(self, frame: pl.DataFrame) -> None:
        """bash → iptables → sh: one tree of depth 3 from the exec events."""
        pytest.importorskip("processors.proc_tree_builder")
        from processors.process_tree_utils import get_summary_info

        tree = generate_process_tree(get_event_subset(frame, "SYSCALL_EXECVE"))
        summary = get_summary_info(tree)
        assert summary["Processes"] >= 3
        assert summary["LargestTreeDepth"] >= 3
