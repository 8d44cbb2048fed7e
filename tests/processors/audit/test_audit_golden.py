"""Golden pairs: audit logs (``tests/data/audit/<case>.log``, made up in the shape of real ones) and the
documents they must give (``<case>.json``). ``SECSTREAM_WRITE_GOLDEN=1`` rewrites the expected files; the
diff then shows how the ECS output changed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from processors.audit.coalesce import AuditEvent, Coalescer, CoalescerState
from processors.audit.decode import decode_event, decode_late
from processors.audit.parse import parse_line

DATA = Path(__file__).parents[2] / "data" / "audit"
#: One case per defect of issue #23 (see each log's records).
CASES = [
    "login_in_syscall",  # 1: user-space records inside a syscall group with it; the lone form is not held
    "user_identities",  # 2: each user.* pairs an id with its own name; acct/id to effective or target
    "enriched_placeholders",  # 3: "unset", "(none)", "unknown(N)" are not names
    "arches",  # 4: i386, ppc64 (big-endian sockaddr), s390x, riscv64, loongarch64, mips, arm syscall names
    "file_acted_on",  # 5 and 8: file.path is the item acted on (nametype/objtype); name=(null) is absent
    "categories",  # 6: ECS categorisation of record types and syscall classes
    "rhel5_res",  # 8: RHEL 5's "res=success)'" gives an outcome
]


def documents(log: Path) -> list[dict[str, Any]]:
    """The documents of a log, in output order, as the stage graph makes them (without the process tree)."""
    coalescer, state = Coalescer(), CoalescerState()
    outputs = []
    # not splitlines(): the ENRICHED separator \x1d is a line boundary to it
    for line in log.read_text().rstrip("\n").split("\n"):
        outputs += coalescer.push(parse_line(line), state)
        outputs += coalescer.expire(state)
    outputs += coalescer.flush_all(state)
    return [
        decode_event(out, default_host="golden") if isinstance(out, AuditEvent) else decode_late(out) for out in outputs
    ]


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    """The documents of each golden log equal its expected file."""
    got = orjson.loads(orjson.dumps(documents(DATA / f"{case}.log")))
    expected_path = DATA / f"{case}.json"
    if os.environ.get("SECSTREAM_WRITE_GOLDEN") == "1":
        expected_path.write_bytes(orjson.dumps(got, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    assert got == orjson.loads(expected_path.read_bytes())
