"""Process trees for the event stream: a rolling per-host tracker that adds ECS lineage to process events.

The msticpy-compatible batch builder lives in :mod:`processors.proc_tree_builder`; both follow the same
parent rule (the latest process with the parent's pid on the same host that started at or before the
child), so a batch of exec events gives the same parents in either engine.
"""

from processors.proctree.tracker import (
    EXEC_SYSCALLS,
    EXIT_SYSCALLS,
    FORK_SYSCALLS,
    LineageError,
    ProcessNode,
    ProcessTracker,
    ProcessTrackerSettings,
    ProcessTrackerState,
    build_lineage,
)

__all__ = [
    "EXEC_SYSCALLS",
    "EXIT_SYSCALLS",
    "FORK_SYSCALLS",
    "LineageError",
    "ProcessNode",
    "ProcessTracker",
    "ProcessTrackerSettings",
    "ProcessTrackerState",
    "build_lineage",
]
