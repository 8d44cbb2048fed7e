"""Differential test against go-libaudit's aucoalesce test data (Apache-2.0), read in place from
``../shared/eval/peer-auditd/go-libaudit`` (or ``$SECSTREAM_SHARED``), never copied.

Each test case is one event's records with go-libaudit's expected document. Compared field by field where
the concepts match: grouping, sequence, outcome, syscall and arch names, pid/ppid/exe, uid/auid/gid, the
account (``user.effective.name``/``user.target.name``), rule keys, ``file.path`` and the ECS category and
type (ours must be among go-libaudit's, which adds ``process`` to events that carry process fields).
Where the concepts differ, :data:`DIFFERENT` says why; each of those is also covered by our own golden cases.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from processors.audit.coalesce import AuditEvent, Coalescer, CoalescerState
from processors.audit.decode import decode_event
from processors.audit.parse import parse_line

_REPO = Path(__file__).parents[3]


def _peer_dir() -> Path | None:
    override = os.environ.get("SECSTREAM_SHARED")
    candidates = [Path(override)] if override else [_REPO.parent / "shared", _REPO.parent.parent / "shared"]
    for candidate in candidates:
        found = candidate / "eval" / "peer-auditd" / "go-libaudit" / "aucoalesce" / "testdata"
        if found.is_dir():
            return found
    return None


PEER = _peer_dir()
pytestmark = pytest.mark.skipif(
    PEER is None, reason="go-libaudit's test data (shared/eval/peer-auditd/go-libaudit) is not beside the checkout"
)

#: (test name, field) → why secstream differs from go-libaudit there.
DIFFERENT: dict[tuple[str, str], str] = {
    ("make-device", "file.path"): "go-libaudit takes item 0 (the PARENT); secstream the CREATE item (#23, 5)",
    ("mount syscall", "type"): "go-libaudit: mount is file creation; secstream: a change (nothing is created)",
    ("AVC_AppArmor", "category"): "go-libaudit categorises an AVC by its syscall; secstream as a denial",
    ("AVC_AppArmor", "type"): "as above",
    ("AVC_AppArmor_unlink", "category"): "as above",
    ("AVC_AppArmor_unlink", "type"): "as above",
    ("ANOM_PROMISCUOUS", "category"): "go-libaudit: intrusion_detection/process; secstream: a host change",
    ("EXECVE", "tags"): "go-libaudit strips a 'key=' prefix from the rule key; secstream keeps the key as written",
    ("accept syscall", "tags"): "as above",
    ("connect syscall", "tags"): "as above",
    ("changed-system-time", "tags"): "as above",
    ("CONFIG_CHANGE remove rule", "tags"): "as above",
    ("listen syscall", "tags"): "as above",
    ("AUDIT_TIME_ADJNTPVAL chronyd status", "tags"): "the test data lost the ENRICHED separator \\x1d",
    ("AUDIT_TIME_ADJNTPVAL chronyd freq", "tags"): "as above",
    ("AUDIT_TIME_ADJNTPVAL freq/tick", "tags"): "as above",
    ("getpeername syscall", "category"): "go-libaudit: process; secstream: network",
    ("getsockname syscall", "category"): "as above",
}


def _cases(text: str) -> dict[str, str]:
    """The ``tests:`` mapping of an aucoalesce YAML file: names at two spaces, ``|`` (literal) or ``>``
    (folded: lines joined by spaces) blocks at four."""
    cases: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        stripped = line.rstrip()
        if line.startswith("  ") and not line.startswith("    ") and stripped.endswith((": |", ": >")):
            current = []
            cases[stripped[: -len(": |")].strip().strip("'\"")] = (stripped[-1], current)
        elif line.startswith("    ") and current is not None:
            current.append(line[4:])
    return {name: ("\n" if style == "|" else " ").join(lines) for name, (style, lines) in cases.items()}


def _documents(text: str) -> list[dict[str, Any]]:
    coalescer, state = Coalescer(), CoalescerState()
    outputs = []
    for line in text.split("\n"):
        if line.strip():
            outputs += coalescer.push(parse_line(line), state)
    outputs += coalescer.flush_all(state)
    return [decode_event(out) for out in outputs if isinstance(out, AuditEvent)]


def _unset(value: str | None) -> str | None:
    return None if value in (None, "unset") else value


def compare(doc: dict[str, Any], theirs: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Field → (ours, go-libaudit's) where they disagree."""
    diffs: dict[str, tuple[Any, Any]] = {}

    def check(name: str, ours: Any, expected: Any) -> None:
        if ours != expected:
            diffs[name] = (ours, expected)

    user, process, data = doc.get("user", {}), doc.get("process", {}), doc["auditd"]["data"]
    check("sequence", doc["event"]["sequence"], theirs["sequence"])
    result = {"fail": "failure"}.get(theirs.get("result", ""), theirs.get("result"))
    check("outcome", doc["event"]["outcome"], result)
    for name in ("syscall", "arch"):
        if name in theirs.get("data", {}):
            check(name, data.get(name), theirs["data"][name])
    their_process = theirs.get("process", {})
    for name, ours in (("pid", process.get("pid")), ("ppid", process.get("ppid"))):
        if name in their_process:
            check(name, str(ours), their_process[name])
    if "exe" in their_process:
        check("exe", process.get("executable"), their_process["exe"])
    ids = theirs.get("user", {}).get("ids", {})
    for name, ours in (("uid", user.get("id")), ("auid", user.get("audit", {}).get("id"))):
        if name in ids:
            check(name, ours, _unset(ids[name]))
    if "gid" in ids:
        check("gid", user.get("group", {}).get("id"), _unset(ids["gid"]))
    ecs = theirs["ecs"]
    for key in ("effective", "target"):
        name = ecs.get("user", {}).get(key, {}).get("name")
        if name:
            check(f"{key}.name", user.get(key, {}).get("name"), name)
    if "tags" in theirs:
        check("tags", doc.get("tags"), theirs["tags"])
    if "path" in theirs.get("file", {}):
        check("file.path", doc.get("file", {}).get("path"), theirs["file"]["path"])
    for name in ("category", "type"):
        expected = set(ecs.get("event", {}).get(name) or [])
        if expected and not set(doc["event"][name]) <= expected:
            diffs[name] = (doc["event"][name], sorted(expected))
    return diffs


def _all_cases() -> list[tuple[str, str, dict[str, Any]]]:
    if PEER is None:
        return []
    out = []
    for path in sorted(PEER.glob("*.yaml")):
        golden = {
            case["test_name"]: case["event"] for case in orjson.loads(path.with_suffix(".json.golden").read_bytes())
        }
        for name, text in _cases(path.read_text()).items():
            if name in golden:
                out.append((name, text, golden[name]))
    return out


@pytest.mark.parametrize(("name", "text", "theirs"), _all_cases(), ids=lambda value: str(value)[:40])
def test_agrees_with_go_libaudit(name: str, text: str, theirs: dict[str, Any]) -> None:
    """One event per case, equal to go-libaudit's on every field where the concepts match."""
    docs = _documents(text)
    assert len(docs) == 1, "the records of one case are one event"
    diffs = {field: values for field, values in compare(docs[0], theirs).items() if (name, field) not in DIFFERENT}
    assert not diffs


def test_every_listed_difference_still_differs() -> None:
    """A listed difference that no longer differs is removed from the list (the list stays honest)."""
    cases = {name: (text, theirs) for name, text, theirs in _all_cases()}
    for name, field in DIFFERENT:
        text, theirs = cases[name]
        assert field in compare(_documents(text)[0], theirs), (name, field)
