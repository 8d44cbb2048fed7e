"""Column schemas of process event sources, with msticpy's names (``ProcSchema`` and the built-in schemas).

Differences from msticpy (deliberate):

* ``ProcSchema.__eq__`` is the plain field-by-field equality of a dataclass. msticpy's is asymmetric
  (``a == b`` when every non-empty field of ``b`` equals ``a``'s), so ``a == b`` and ``b == a`` can
  disagree. Use :meth:`ProcSchema.matches` for msticpy's "subset" comparison when you want it.
* ``ProcSchema`` is frozen (hashable); change fields with ``dataclasses.replace``.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from processors.errors import MsticpyException

__all__ = [
    "HX_PROCESSEVENT_SCH",
    "LX_EVENT_SCH",
    "MDE_EVENT_SCH",
    "MDE_INT_EVENT_SCH",
    "OSQUERY_EVENT_SCH",
    "SUPPORTED_SCHEMAS",
    "SYSMON_PROCESS_CREATE_EVENT_SCH",
    "WIN_EVENT_SCH",
    "ColNames",
    "ProcSchema",
    "ProcessTreeSchemaException",
]


class ProcessTreeSchemaException(MsticpyException):
    """The schema lacks a field that an operation needs (msticpy's exception of the same name)."""


@dataclass(frozen=True)
class ProcSchema:
    """Maps the generic process fields onto the columns of a data source.

    ``process_name``, ``process_id``, ``parent_id`` and ``time_stamp`` are required; the rest are optional
    and make the tree more complete when present.
    """

    process_name: str
    process_id: str
    parent_id: str
    time_stamp: str
    cmd_line: str | None = None
    path_separator: str = "\\"
    user_name: str | None = None
    logon_id: str | None = None
    host_name_column: str | None = None
    parent_name: str | None = None
    target_logon_id: str | None = None
    user_id: str | None = None
    event_id_column: str | None = None
    event_id_identifier: Any | None = None

    def matches(self, other: ProcSchema) -> bool:
        """msticpy's asymmetric comparison: every non-empty field of ``other`` equals this schema's."""
        mine = asdict(self)
        return all(not value or value == mine[name] for name, value in asdict(other).items())

    @property
    def required_columns(self) -> list[str]:
        """Names of the fields msticpy lists as required."""
        return ["process_name", "process_id", "parent_id", "cmd_line", "path_separator", "time_stamp"]

    @property
    def column_map(self) -> dict[str, str]:
        """Field name → column name (as text) for every column field."""
        return {
            name: str(col)
            for name, col in asdict(self).items()
            if name not in {"path_separator", "event_id_identifier"}
        }

    @property
    def columns(self) -> list[str | None]:
        """Column names of all column fields (None for unset ones, as in msticpy)."""
        return [col for name, col in asdict(self).items() if name not in {"path_separator", "event_id_identifier"}]

    def get_df_cols(self, data: Any) -> list[str]:
        """Return the schema columns present in ``data`` (a DataFrame)."""
        present = set(data.columns)
        return [col for col in self.columns if col is not None and col in present]

    @property
    def host_name(self) -> str | None:
        """The host name column."""
        return self.host_name_column

    @property
    def event_type_col(self) -> str:
        """The event id column.

        Raises:
            ProcessTreeSchemaException: if the schema has none.
        """
        if self.event_id_column:
            return self.event_id_column
        raise ProcessTreeSchemaException("Unknown schema - there is no value for the 'event_id' column.")

    @property
    def event_filter(self) -> Any:
        """The event id value of process-creation events.

        Raises:
            ProcessTreeSchemaException: if the schema has none.
        """
        if self.event_id_identifier:
            return self.event_id_identifier
        raise ProcessTreeSchemaException(
            "Unknown schema - there is no value for the 'event_id_identifier' in the schema."
        )

    @classmethod
    def blank_schema_dict(cls) -> dict[str, Any]:
        """Return a dict of all fields, ``"required"`` for required ones and None otherwise."""
        return {fld.name: ("required" if fld.default is MISSING else None) for fld in fields(cls)}


WIN_EVENT_SCH = ProcSchema(
    time_stamp="TimeGenerated",
    process_name="NewProcessName",
    process_id="NewProcessId",
    parent_name="ParentProcessName",
    parent_id="ProcessId",
    logon_id="SubjectLogonId",
    target_logon_id="TargetLogonId",
    cmd_line="CommandLine",
    user_name="SubjectUserName",
    path_separator="\\",
    user_id="SubjectUserSid",
    event_id_column="EventID",
    event_id_identifier=4688,
    host_name_column="Computer",
)

LX_EVENT_SCH = ProcSchema(
    time_stamp="TimeGenerated",
    process_name="exe",
    process_id="pid",
    parent_name=None,
    parent_id="ppid",
    logon_id="ses",
    target_logon_id=None,
    cmd_line="cmdline",
    user_name="acct",
    path_separator="/",
    user_id="uid",
    event_id_column="EventType",
    event_id_identifier="SYSCALL_EXECVE",
    host_name_column="Computer",
)

MDE_INT_EVENT_SCH = ProcSchema(
    time_stamp="CreatedProcessCreationTime",
    process_name="CreatedProcessName",
    process_id="CreatedProcessId",
    parent_name="ParentProcessName",
    parent_id="CreatedProcessParentId",
    logon_id="InitiatingProcessLogonId",
    target_logon_id="LogonId",
    cmd_line="CreatedProcessCommandLine",
    user_name="CreatedProcessAccountName",
    path_separator="\\",
    user_id="CreatedProcessAccountSid",
    host_name_column="ComputerDnsName",
)

MDE_EVENT_SCH = ProcSchema(
    time_stamp="Timestamp",
    process_name="FileName",
    process_id="ProcessId",
    parent_name="InitiatingProcessFileName",
    parent_id="InitiatingProcessId",
    logon_id="InitiatingProcessLogonId",
    target_logon_id="LogonId",
    cmd_line="ProcessCommandLine",
    user_name="AccountName",
    path_separator="\\",
    user_id="AccountSid",
    host_name_column="DeviceName",
    event_id_column="ActionType",
    event_id_identifier="ProcessCreated",
)

SYSMON_PROCESS_CREATE_EVENT_SCH = ProcSchema(
    time_stamp="UtcTime",
    process_name="Image",
    process_id="ProcessId",
    parent_name="ParentImage",
    parent_id="ParentProcessId",
    logon_id="LogonId",
    cmd_line="CommandLine",
    user_name="User",
    path_separator="\\",
    event_id_column="EventID",
    event_id_identifier=1,
    host_name_column="Computer",
)

OSQUERY_EVENT_SCH = ProcSchema(
    time_stamp="calendarTime",
    process_name="name",
    process_id="pid",
    parent_name="pcmdline",
    parent_id="parent",
    cmd_line="cmdline",
    user_name="username",
    path_separator="/",
    user_id="uid",
)

HX_PROCESSEVENT_SCH = ProcSchema(
    time_stamp="starttime",
    process_name="process",
    process_id="pid",
    parent_name="parentprocess",
    parent_id="parentpid",
    cmd_line="processcmdline",
    user_name="username",
    path_separator="\\",
    event_id_column="eventtype",
    event_id_identifier="start",
    host_name_column="hostname",
)

SUPPORTED_SCHEMAS: tuple[ProcSchema, ...] = (
    WIN_EVENT_SCH,
    LX_EVENT_SCH,
    MDE_INT_EVENT_SCH,
    MDE_EVENT_SCH,
    SYSMON_PROCESS_CREATE_EVENT_SCH,
    OSQUERY_EVENT_SCH,
    HX_PROCESSEVENT_SCH,
)


class ColNames:
    """Names of the columns the builders add."""

    proc_key = "proc_key"
    parent_key = "parent_key"
    new_process_lc = "new_process_lc"
    parent_proc_lc = "parent_proc_lc"
    timestamp_orig_par = "timestamp_orig_par"
    EffectiveLogonId = "EffectiveLogonId"
    source_index = "source_index"
    source_index_par = "source_index_par"
    new_process_lc_par = "new_process_lc_par"
    EffectiveLogonId_par = "EffectiveLogonId_par"
    parent_index = "parent_index"
    path = "path"
