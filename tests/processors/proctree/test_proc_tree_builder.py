"""msticpy-compatible batch process tree builder: the reference's test expectations, and its fixed bugs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors import proc_tree_build_winlx as winlx
from processors import proc_tree_builder as builder
from processors import process_tree_utils as pt_util
from processors.proc_tree_build_mde import convert_mde_schema_to_internal, convert_sentinel_to_mde
from processors.proc_tree_builder import build_process_tree, infer_schema
from processors.proc_tree_schema import LX_EVENT_SCH, MDE_EVENT_SCH, WIN_EVENT_SCH, ProcSchema
from processors.proc_tree_schema import ColNames as Col

_MDE_DATES = [
    "CreatedProcessCreationTime",
    "CreatedProcessFileCreationTime",
    "InitiatingProcessCreationTime",
    "InitiatingProcessParentCreationTime",
    "CreatedProcessParentCreationTimeUtc",
    "ReportTime",
    "ReportArrivalTimeUtc",
    "CreatedProcessReparentingProcessCreationTimeUtc",
    "InitiatingProcessImagePeTimestampUtc",
    "InitiatingProcessImageLastWriteTimeUtc",
    "InitiatingProcessImageLastAccessTimeUtc",
    "InitiatingProcessImageCreationTimeUtc",
]
_MDE_DICT_SCHEMA = {
    "time_stamp": "CreatedProcessCreationTime",
    "process_name": "CreatedProcessName",
    "process_id": "CreatedProcessId",
    "parent_name": "ParentProcessName",
    "parent_id": "CreatedProcessParentId",
    "logon_id": "InitiatingProcessLogonId",
    "target_logon_id": "LogonId",
    "cmd_line": "CreatedProcessCommandLine",
    "user_name": "CreatedProcessAccountName",
    "path_separator": "\\",
    "user_id": "CreatedProcessAccountSid",
    "host_name_column": "ComputerDnsName",
}
_WIN_DICT_SCHEMA: dict[str, Any] = {
    "time_stamp": "TimeGenerated",
    "process_name": "NewProcessName",
    "process_id": "NewProcessId",
    "parent_name": "ParentProcessName",
    "parent_id": "ProcessId",
    "logon_id": "SubjectLogonId",
    "target_logon_id": "TargetLogonId",
    "cmd_line": "CommandLine",
    "user_name": "SubjectUserName",
    "path_separator": "\\",
    "user_id": "SubjectUserSid",
    "event_id_column": "EventID",
    "event_id_identifier": 4688,
    "host_name_column": "Computer",
}
WIN_SUMMARY = {
    "Processes": 1010,
    "RootProcesses": 10,
    "LeafProcesses": 815,
    "BranchProcesses": 185,
    "IsolatedProcesses": 0,
    "LargestTreeDepth": 7,
}
LX_SUMMARY = {
    "Processes": 1029,
    "RootProcesses": 29,
    "LeafProcesses": 497,
    "BranchProcesses": 503,
    "IsolatedProcesses": 0,
    "LargestTreeDepth": 5,
}


@pytest.fixture(scope="module")
def win_df(msticpy_testdata: Path) -> pd.DataFrame:
    return pd.read_csv(
        msticpy_testdata / "win_proc_test.from_pkl.csv", index_col=0, parse_dates=["TimeGenerated", "TimeCreatedUtc"]
    )


@pytest.fixture(scope="module")
def lx_df(msticpy_testdata: Path) -> pd.DataFrame:
    return pd.read_csv(msticpy_testdata / "linux_proc_test.from_pkl.csv", index_col=0, parse_dates=["TimeGenerated"])


@pytest.fixture(scope="module")
def win_tree(win_df: pd.DataFrame) -> pl.DataFrame:
    """The polars tree (polars in, polars out; the pandas tree is tested in tests/processors/msticpy)."""
    return build_process_tree(pl.from_pandas(win_df))


@pytest.fixture(scope="module")
def lx_tree(lx_df: pd.DataFrame) -> pl.DataFrame:
    return build_process_tree(pl.from_pandas(lx_df))


class TestBuildProcessTree:
    def test_win_summary(self, win_tree: pl.DataFrame) -> None:
        """The Windows 4688 sample gives msticpy's summary with the inferred schema."""
        assert pt_util.get_summary_info(win_tree) == WIN_SUMMARY

    def test_win_dict_schema(self, win_df: pd.DataFrame) -> None:
        """A dict schema gives the same tree as the inferred one."""
        assert pt_util.get_summary_info(build_process_tree(win_df, schema=_WIN_DICT_SCHEMA)) == WIN_SUMMARY

    def test_win_without_logon_ids(self, win_df: pd.DataFrame) -> None:
        """Dropping the logon id columns does not change the tree (msticpy HEAD test)."""
        data = win_df.drop(columns=["SubjectLogonId", "TargetLogonId"])
        assert pt_util.get_summary_info(build_process_tree(data, schema=WIN_EVENT_SCH)) == WIN_SUMMARY

    def test_polars_input(self, win_df: pd.DataFrame) -> None:
        """A polars frame gives the same tree as the pandas one."""
        assert pt_util.get_summary_info(build_process_tree(pl.from_pandas(win_df))) == WIN_SUMMARY

    def test_lx_summary(self, lx_tree: pl.DataFrame) -> None:
        """The auditd sample gives msticpy's summary."""
        assert pt_util.get_summary_info(lx_tree) == LX_SUMMARY

    def test_mde_dict_schema(self, msticpy_testdata: Path) -> None:
        """The MDE internal-schema sample gives msticpy's summary."""
        data = pd.read_csv(msticpy_testdata / "mde_proc_cs1.csv", parse_dates=_MDE_DATES)
        tree = build_process_tree(data, schema=_MDE_DICT_SCHEMA)
        assert pt_util.get_summary_info(tree) == {
            "Processes": 1642,
            "RootProcesses": 9,
            "LeafProcesses": 1177,
            "BranchProcesses": 456,
            "IsolatedProcesses": 0,
            "LargestTreeDepth": 16,
        }

    def test_minimal_schema(self, msticpy_testdata: Path) -> None:
        """Four columns (name, pid, ppid, time) are enough; Volatility pstree output gives msticpy's summary."""
        data = pd.read_csv(msticpy_testdata / "winproctree-minimal.csv", index_col=0, parse_dates=["CreateTime"])
        schema = {"process_name": "ImageFileName", "process_id": "PID", "parent_id": "PPID", "time_stamp": "CreateTime"}
        assert pt_util.get_summary_info(build_process_tree(data, schema=schema)) == {
            "Processes": 126,
            "RootProcesses": 10,
            "LeafProcesses": 97,
            "BranchProcesses": 19,
            "IsolatedProcesses": 0,
            "LargestTreeDepth": 7,
        }

    def test_processes_on_host(self, msticpy_testdata: Path) -> None:
        """processes_on_host.csv gives msticpy's summary."""
        data = pd.read_csv(msticpy_testdata / "processes_on_host.csv", index_col=0, parse_dates=["TimeGenerated"])
        assert pt_util.get_summary_info(build_process_tree(data)) == {
            "Processes": 369,
            "RootProcesses": 6,
            "LeafProcesses": 279,
            "BranchProcesses": 84,
            "IsolatedProcesses": 0,
            "LargestTreeDepth": 5,
        }

    def test_keys_and_columns(self, win_tree: pl.DataFrame) -> None:
        """Keys have msticpy's format and the tree columns are present."""
        root = win_tree.row(0, named=True)
        assert root["proc_key"] == "c:\\windows\\system32\\svchost.exe|0x270|1970-01-01 00:00:00.000000"
        assert root["source_index"] == "01000"
        assert "c:\\windows\\system32\\cmd.exe|0x14ec|2019-02-09 20:05:31.010000" in win_tree["proc_key"].to_list()
        for col in ("proc_key", "parent_key", "path", "IsRoot", "IsLeaf", "IsBranch", "source_index", "parent_index"):
            assert col in win_tree.columns
        assert "NewProcessId_par" in win_tree.columns

    def test_linux_parent_id_column_named_after_schema(self, lx_tree: pl.DataFrame) -> None:
        """Fixed bug: Linux data gets ``pid_par``, not msticpy's literal ``NewProcessId_par``."""
        assert "pid_par" in lx_tree.columns
        assert "NewProcessId_par" not in lx_tree.columns

    def test_no_schema_raises(self) -> None:
        """Data matching no schema raises TypeError as msticpy does."""
        with pytest.raises(TypeError):
            build_process_tree(pl.DataFrame({"a": [1], "b": [2]}))

    def test_parents_matched_per_host(self) -> None:
        """Fixed: a process on another host with the parent's pid is never taken as the parent."""
        data = pl.DataFrame(
            {
                "Computer": ["a", "b", "b"],
                "pid": [10, 10, 11],
                "ppid": [1, 1, 10],
                "exe": ["/bin/a", "/bin/b", "/bin/c"],
                "TimeGenerated": [datetime(2024, 1, 1, 0, 0, s) for s in (1, 0, 2)],
            }
        )
        tree = build_process_tree(data, schema=LX_EVENT_SCH)
        child = tree.filter(pl.col("exe") == "/bin/c").row(0, named=True)
        assert child["parent_key"] == "/bin/b|10|2024-01-01 00:00:00.000000"


class TestProcSchema:
    def test_equality_is_symmetric(self) -> None:
        """Fixed: a partial schema is not equal to a full one in either direction (msticpy: one way)."""
        partial = ProcSchema(
            process_name="NewProcessName", process_id="NewProcessId", parent_id="ProcessId", time_stamp="TimeGenerated"
        )
        assert partial != WIN_EVENT_SCH
        assert not WIN_EVENT_SCH.__eq__(partial)
        assert WIN_EVENT_SCH.matches(partial)
        assert not partial.matches(WIN_EVENT_SCH)

    def test_infer_schema_of_tree(self, win_tree: pl.DataFrame, lx_tree: pl.DataFrame) -> None:
        """The built trees still infer to their source schemas."""
        assert infer_schema(win_tree) == WIN_EVENT_SCH
        assert infer_schema(lx_tree) == LX_EVENT_SCH

    def test_event_type_col_raises_when_unset(self) -> None:
        """event_type_col raises ProcessTreeSchemaException for a schema without event id column."""
        from processors.proc_tree_schema import ProcessTreeSchemaException

        with pytest.raises(ProcessTreeSchemaException):
            _ = ProcSchema(process_name="a", process_id="b", parent_id="c", time_stamp="d").event_type_col


class TestProcessTreeUtils:
    def test_win_utils(self, win_tree: pl.DataFrame) -> None:
        """msticpy's utility expectations on the Windows sample."""
        roots = pt_util.get_roots(win_tree)
        assert len(roots) == 10
        root = roots.row(4, named=True)
        full = pt_util.get_descendents(win_tree, root)
        assert len(full) == 25
        assert len(pt_util.get_children(win_tree, root)) == 13
        depth = full["path"].str.count_matches("/").max()
        bottom = full.filter(pl.col("path").str.count_matches("/") == depth).row(0, named=True)
        assert len(pt_util.get_ancestors(win_tree, bottom)) == 3
        assert isinstance(pt_util.get_parent(win_tree, bottom), dict)
        assert pt_util.get_process(win_tree, bottom["proc_key"]) == bottom
        assert pt_util.get_process(win_tree, bottom) == bottom
        assert pt_util.get_root(win_tree, bottom) == root
        children = pt_util.get_children(win_tree, root, include_source=False)
        first = children.row(0, named=True)
        assert len(children) == len(pt_util.get_siblings(win_tree, first, include_source=True))
        assert len(children) == len(pt_util.get_siblings(win_tree, first, include_source=False)) + 1

    def test_lx_utils(self, lx_tree: pl.DataFrame) -> None:
        """msticpy's utility expectations on the Linux sample."""
        roots = pt_util.get_roots(lx_tree)
        assert len(roots) == 29
        root = roots.row(0, named=True)
        full = pt_util.get_descendents(lx_tree, root)
        assert len(full) == 901
        assert len(pt_util.get_children(lx_tree, root)) == 452
        depth = full["path"].str.count_matches("/").max()
        bottom = full.filter(pl.col("path").str.count_matches("/") == depth).row(0, named=True)
        assert len(pt_util.get_ancestors(lx_tree, bottom)) == 3

    def test_descendents_max_levels(self, win_tree: pl.DataFrame) -> None:
        """max_levels=1 returns the children plus the source."""
        root = pt_util.get_roots(win_tree).row(4, named=True)
        assert len(pt_util.get_descendents(win_tree, root, max_levels=1)) == 13

    def test_get_process_one_row_frame(self, win_tree: pl.DataFrame) -> None:
        """A one-row frame is accepted as source; other types raise ValueError."""
        assert pt_util.get_process(win_tree, win_tree.head(1)) == win_tree.row(0, named=True)
        with pytest.raises(ValueError, match="Unknown type"):
            pt_util.get_process(win_tree, 42)  # type: ignore[arg-type]

    def test_get_process_key(self, win_tree: pl.DataFrame) -> None:
        """get_process_key maps a source index (int or padded text) to the proc_key."""
        key = pt_util.get_process_key(win_tree, 1000)
        assert key == pt_util.get_process_key(win_tree, "01000")
        assert key.startswith("c:\\windows\\system32\\svchost.exe|0x270|")

    def test_root_tree_exact_component(self) -> None:
        """Fixed bug: the tree of root 1 does not include the tree of root 10 (msticpy's prefix match did)."""
        tree = pl.DataFrame(
            {
                "proc_key": ["a", "b", "c"],
                "parent_key": [None, None, "b"],
                "source_index": ["1", "10", "11"],
                "path": ["1", "10", "10/11"],
                "IsRoot": [True, True, False],
            }
        )
        assert pt_util.get_root_tree(tree, "a")["proc_key"].to_list() == ["a"]
        assert pt_util.get_root_tree(tree, "c")["proc_key"].to_list() == ["b", "c"]
        assert tree.filter(pl.col("path").str.starts_with("1")).height == 3  # what the prefix match returned

    def test_source_index_width_grows(self) -> None:
        """source_index is padded to one width for the whole frame, so paths sort correctly."""
        tree = build_process_tree(
            pl.DataFrame(
                {"pid": [2, 3], "ppid": [1, 2], "exe": ["a", "b"], "TimeGenerated": [datetime(2024, 1, 1)] * 2}
            ),
            schema=LX_EVENT_SCH,
        )
        assert {len(s) for s in tree["source_index"].to_list()} == {5}

    def test_tree_to_text_lines(self, win_df: pd.DataFrame) -> None:
        """tree_to_text gives msticpy's 5028 lines for the Windows sample."""
        tree = build_process_tree(win_df, schema=_WIN_DICT_SCHEMA)
        text = pt_util.tree_to_text(tree, schema=_WIN_DICT_SCHEMA)
        assert len(text.split("\n")) == 5028
        assert text.startswith("+  Process: C:\\Windows\\System32\\svchost.exe  PID: 0x270\n   Time: 1970-01-01")

    def test_tree_to_text_needs_schema_or_template(self, win_tree: pl.DataFrame) -> None:
        """Without schema and template tree_to_text raises ValueError."""
        with pytest.raises(ValueError):
            pt_util.tree_to_text(win_tree)


class TestConvertMde:
    def _public(self) -> pl.DataFrame:
        t0 = datetime(2024, 1, 1)
        return pl.DataFrame(
            {
                "Timestamp": [t0],
                "FileName": ["cmd.exe"],
                "FolderPath": ["C:\\Windows\\System32\\cmd.exe"],
                "ProcessId": [30],
                "InitiatingProcessFileName": ["explorer.exe"],
                "InitiatingProcessFolderPath": ["C:\\Windows\\explorer.exe"],
                "InitiatingProcessId": [20],
                "InitiatingProcessParentId": [10],
                "InitiatingProcessParentFileName": [""],
                "InitiatingProcessCreationTime": [t0],
                "InitiatingProcessParentCreationTime": [None],
                "DeviceName": ["h"],
                "ActionType": ["ProcessCreated"],
            },
            schema_overrides={"InitiatingProcessParentCreationTime": pl.Datetime("us")},
        )

    def test_parent_is_initiating_process(self) -> None:
        """Fixed bug: the created process' parent id is the initiating process (msticpy 1.5 used its parent)."""
        out = convert_mde_schema_to_internal(self._public(), MDE_EVENT_SCH)
        row = out.row(0, named=True)
        assert row["CreatedProcessParentId"] == 20
        assert row["CreatedProcessId"] == 30
        assert row["InitiatingProcessImageFilePath"] == "C:\\Windows"
        assert row["InitiatingProcessParentProcessName"] == "unknown"
        assert row["InitiatingProcessParentCreationTime"] == datetime(1970, 1, 1)
        assert convert_sentinel_to_mde is convert_mde_schema_to_internal

    def test_public_schema_builds(self) -> None:
        """Public MDE data builds a tree: child, rebuilt parent and grandparent."""
        tree = build_process_tree(self._public(), schema=MDE_EVENT_SCH)
        assert tree.height == 3
        assert pt_util.get_tree_depth(tree) == 3


@pytest.mark.reference
class TestAgainstMsticpy:
    def test_same_parent_keys_as_msticpy(self, win_df: pd.DataFrame) -> None:
        """Every process has the same parent key as in msticpy, read the same way (proc_key index, NaN)."""
        ref = pytest.importorskip("msticpy.transform.proc_tree_builder")
        theirs = ref.build_process_tree(win_df.copy())
        ours = build_process_tree(win_df)
        assert ours.index.name == theirs.index.name == "proc_key"
        mine = {k: (None if isinstance(v, float) else v) for k, v in ours["parent_key"].items()}
        their_map = {k: (None if isinstance(v, float) else v) for k, v in theirs["parent_key"].items()}
        assert mine == their_map


@st.composite
def _linux_events(draw: st.DrawFn) -> pl.DataFrame:
    """Small process trees: random parents (some unknown), pid reuse, shared time stamps, several hosts."""
    size = draw(st.integers(1, 40))
    pids = draw(st.lists(st.integers(1, 12), min_size=size, max_size=size))
    ppids = draw(st.lists(st.integers(0, 12), min_size=size, max_size=size))
    seconds = sorted(draw(st.lists(st.integers(0, 5), min_size=size, max_size=size)))
    hosts = draw(st.lists(st.sampled_from(["a", "b"]), min_size=size, max_size=size))
    return pl.DataFrame(
        {
            "Computer": hosts,
            "pid": pids,
            "ppid": ppids,
            "exe": [f"/bin/p{pid}" for pid in pids],
            "TimeGenerated": [datetime(2024, 1, 1, 0, 0, s) for s in seconds],
        }
    )


class TestBuilderFastPaths:
    @settings(deadline=None)
    @given(_linux_events())
    def test_fast_paths_equal_the_general_path(self, data: pl.DataFrame) -> None:
        """The hash join and the path-order permutation give exactly the string join and the sort by path."""
        extracted = winlx.extract_process_tree(data, schema=LX_EVENT_SCH)
        general = builder.build_proc_tree(builder._add_tree_properties(extracted))
        general = general.sort([Col.path, LX_EVENT_SCH.time_stamp], maintain_order=True, nulls_last=True)
        assert build_process_tree(data, schema=LX_EVENT_SCH).equals(general)

    @given(st.lists(st.sampled_from(["k1", "k2", "k3", "k4", "k5", None]), min_size=1, max_size=12), st.data())
    def test_hash_join_equals_string_join(self, keys: list[str | None], data: st.DataObject) -> None:
        """Whenever the hash join answers, it finds the same parent rows as the string join."""
        parents = data.draw(st.lists(st.sampled_from(["k1", "k3", "k9", None]), min_size=len(keys), max_size=len(keys)))
        key_series, parent_series = pl.Series(keys, dtype=pl.Utf8), pl.Series(parents, dtype=pl.Utf8)
        by_hash = builder._parent_rows_by_hash(key_series, parent_series)
        if by_hash is not None:
            assert by_hash.tolist() == builder._parent_rows_by_join(key_series, parent_series).tolist()
