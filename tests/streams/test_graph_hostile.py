"""The stage graph never raises for bad input: audit lines with values no stage can represent (times past
the year 9999, serials and pids past 64 bits, non-numeric exits, non-ASCII digits) become dead letters or
events, every line is accounted for, and the lines after them are processed."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import load_config
from streams.graph import HostStates, Pipeline, RawLine
from tests.strategies_syslog import extreme_integers, non_ascii_digits

_RECEIVED = 1_795_766_400.0
_times = st.one_of(
    st.sampled_from(["253402300800.000", "253402300799.999", "0.000", "1795766402.000", "99999999999999999999.5"]),
    st.floats(min_value=-1e20, max_value=1e20, allow_nan=False).map(lambda value: f"{value:.3f}"),
)
_serials = st.one_of(extreme_integers, st.integers(0, 50).map(str))
_values = st.one_of(extreme_integers, non_ascii_digits, st.sampled_from(["abc", "", "0x1", "-"]))
_SYSCALL = (
    "node=h1 type=SYSCALL msg=audit({time}:{serial}): arch=c000003e syscall={syscall} success=yes exit={exit} "
    'a0=1 items=0 ppid={ppid} pid={pid} auid=1000 uid=0 comm="x" exe="/bin/x"'
)
_EXECVE = 'node=h1 type=EXECVE msg=audit({time}:{serial}): argc={argc} a0="x" a1="y"'
_EOE = "node=h1 type=EOE msg=audit({time}:{serial}): "


@st.composite
def _events(draw: st.DrawFn) -> list[str]:
    time, serial = draw(_times), draw(_serials)
    fields = {
        "time": time,
        "serial": serial,
        "syscall": draw(st.sampled_from(["56", "59", "57", "0"])),
        "exit": draw(_values),
        "ppid": draw(_values),
        "pid": draw(_values),
        "argc": draw(_values),
    }
    lines = [_SYSCALL.format(**fields)]
    if draw(st.booleans()):
        lines.append(_EXECVE.format(**fields))
    if draw(st.booleans()):
        lines.append(_EOE.format(**fields))
    return lines


@settings(max_examples=80)
@given(st.lists(_events(), min_size=1, max_size=6))
def test_audit_lines_never_raise_and_nothing_vanishes(events: list[list[str]]) -> None:
    pipeline = Pipeline(load_config(environ={}))
    states = HostStates()
    lines = [line for event in events for line in event]
    good = "node=h1 type=USER_CMD msg=audit(1795766500.000:999999): pid=1 uid=0 msg='cmd=6964 res=success'"
    raw = [RawLine(text, {"file": "a", "line": n}, None, _RECEIVED) for n, text in enumerate([*lines, good])]
    pending = pipeline.audit_lines(raw, states)
    pending.extend(pipeline.shutdown(states))
    outputs = asyncio.run(pipeline.complete(pending, states))
    assert pipeline.stats.lines_in["auditd"] == len(raw)
    assert any(doc.get("auditd", {}).get("sequence") == 999999 for doc in outputs.events) or any(
        "999999" in doc["event"]["original"] for doc in outputs.deadletters
    )
    assert sum(pipeline.stats.bad_input.values()) == len(outputs.deadletters)
