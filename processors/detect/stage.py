"""The one contract of the stages that run on every event after enrichment.

The stage graph (``streams/graph.py``) declares these stages as a tuple and runs them in order on each
document with that host's state. A stage:

* has a ``name``: the key of its state in a host's state and in the host snapshot;
* has a ``state_type`` (a class with ``snapshot()`` and ``from_snapshot(data)``), or None when it keeps
  no state;
* implements ``run(doc, state, events, alerts)``: it may annotate ``doc`` in place, append documents that
  follow it to ``events`` (``events[0]`` is ``doc`` itself) and append alerts to ``alerts``, which
  already holds the alerts that earlier stages raised on this document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, Self

__all__ = ["DetectionStage", "StageState"]


class StageState(Protocol):
    """One host's state of a stage: plain data in and out, for the host snapshot."""

    def snapshot(self) -> dict[str, Any]: ...

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Self: ...


class DetectionStage(Protocol):
    """A stage after enrichment (sessions, rules, detectors, Sigma): see the module docstring."""

    @property
    def name(self) -> str:
        """The key of the stage's state in a host's state and snapshot."""

    @property
    def state_type(self) -> type[StageState] | None:
        """The class of one host's state, or None for a stage without state."""

    def run(self, doc: dict[str, Any], state: Any, events: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> None:
        """Run on one document with its host's state (None for a stateless stage)."""
