"""Benchmark: the Sigma stage's cost per event, side by side with the stage off.

Corpus: the bundled samples plus the labelled attack/admin corpus of the Sigma tests
(tests/processors/detect/sigma/attack_corpus.py), repeated ``--reps`` times over distinct hosts, decoded
and annotated by the real pipeline once. Then, per rule set (the project's pack; the pack plus every
SigmaHQ Linux rule from ../shared/sigma/sigmahq or $SECSTREAM_SHARED, when present):

* ``stage``: ``SigmaEngine.match`` over every event document (views, rules, alert documents), µs/event;
* ``complete on/off``: ``Pipeline.complete`` (sessions, rules, detectors, Sigma) over the same pending
  documents with ``detection.sigma.enabled`` true and false, and the difference per event;
* hostile input: one process event with 7.5 kB of EXECVE arguments, one 1 MiB syslog message (µs each).

Run: ``PYTHONPATH=. /work/main/.venv/bin/python bench/bench_sigma.py --reps 40``
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import os
import sys
import time
import timeit
from pathlib import Path
from typing import Any

from processors.detect.sigma import SigmaEngine
from streams.config import SecstreamConfig, load_config
from streams.graph import HostStates, Pending, Pipeline, RawLine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "processors" / "detect" / "sigma"))
from attack_corpus import cases  # noqa: E402


def _sigmahq() -> list[Path]:
    override = os.environ.get("SECSTREAM_SHARED")
    for base in [Path(override)] if override else [REPO.parent / "shared", REPO.parent.parent / "shared"]:
        root = base / "sigma" / "sigmahq"
        if (root / "rules" / "linux").is_dir():
            return [root / "rules", root / "rules-threat-hunting", root / "rules-emerging-threats"]
    return []


def _lines(reps: int) -> tuple[list[str], list[str]]:
    audit = (REPO / "config/samples/audit.log").read_text().splitlines()
    syslog = (REPO / "config/samples/syslog.log").read_text().splitlines()
    for case in cases():
        audit += case.audit
        syslog += case.syslog
    audit_out: list[str] = []
    syslog_out: list[str] = []
    for rep in range(reps):
        audit_out += [line.replace("node=", f"node=r{rep}-", 1) for line in audit]
        syslog_out += syslog
    return audit_out, syslog_out


def _pending(pipeline: Pipeline, reps: int) -> tuple[Pending, HostStates]:
    audit, syslog = _lines(reps)
    states = HostStates()
    pending = pipeline.audit_lines((RawLine(line) for line in audit), states)
    pending.extend(pipeline.shutdown(states))
    pending.extend(pipeline.syslog_lines((RawLine(line) for line in syslog), states))
    return pending, states


def _config(tmp: Path, paths: list[Path], enabled: bool) -> SecstreamConfig:
    """The project's pack plus ``paths``."""
    quoted = ", ".join(f'"{path}"' for path in paths)
    (tmp / "bench.toml").write_text(
        f"[enrichment]\nenabled = false\n[detection.sigma]\nenabled = {str(enabled).lower()}\nrule_paths = [{quoted}]\n"
    )
    return load_config(tmp / "bench.toml", environ={})


def _time_stage(engine: SigmaEngine, docs: list[dict[str, Any]], rounds: int) -> tuple[float, int]:
    best = float("inf")
    alerts = 0
    for _ in range(rounds):
        gc.collect()
        start = time.process_time()
        alerts = sum(len(engine.match(doc)) for doc in docs)
        best = min(best, time.process_time() - start)
    return best / len(docs) * 1e6, alerts


def _time_complete(config: SecstreamConfig, reps: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        pipeline = Pipeline(config)
        pending, states = _pending(pipeline, reps)
        gc.collect()
        start = time.process_time()
        asyncio.run(pipeline.complete(pending, states))
        best = min(best, time.process_time() - start)
    return best


def _hostile(engine: SigmaEngine, docs: list[dict[str, Any]]) -> tuple[float, float]:
    process = next(
        d for d in docs if d.get("process", {}).get("command_line") and "EXECVE" in d["auditd"]["message_types"]
    )
    big = copy.deepcopy(process)
    args = ["bash", "-c", " ".join(f"arg{i}=" + "A" * 60 for i in range(120))]
    big["process"]["args"] = args
    big["process"]["command_line"] = " ".join(args)
    syslog = copy.deepcopy(next(d for d in docs if d["event"]["module"] == "syslog"))
    syslog["message"] = ("x" * 1023 + " ") * 1024
    out = []
    for doc in (big, syslog):
        start = time.process_time()
        for _ in range(5):
            engine.match(doc)
        out.append((time.process_time() - start) / 5 * 1e6)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import tempfile

    tmp = Path(tempfile.mkdtemp())
    sets: dict[str, list[Path]] = {"pack": []}
    if _sigmahq():
        sets["pack+sigmahq"] = _sigmahq()
    else:
        print("SigmaHQ rules not found (../shared/sigma/sigmahq, $SECSTREAM_SHARED): pack only")
    base = Pipeline(_config(tmp, [], enabled=False))
    pending, states = _pending(base, args.reps)
    docs = asyncio.run(base.complete(pending, states)).events
    modules: dict[str, int] = {}
    for doc in docs:
        modules[doc["event"]["module"]] = modules.get(doc["event"]["module"], 0) + 1
    print(f"corpus: {len(docs)} event documents {modules}, Python {sys.version.split()[0]}")
    # The machine is shared: this reference loop takes about 7 µs on an idle core of the 2-core VM.
    calibration = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6
    print(f"calibration: sum(range(1000)) {calibration:.1f} µs (load average {os.getloadavg()[0]:.1f})")
    off = _time_complete(_config(tmp, [], enabled=False), args.reps, args.rounds)
    print(f"complete, Sigma off: {off / len(docs) * 1e6:7.2f} µs/event")
    for label, paths in sets.items():
        engine = SigmaEngine.load(paths, with_project_rules=True)
        per_event, alerts = _time_stage(engine, docs, args.rounds)
        on = _time_complete(_config(tmp, paths, enabled=True), args.reps, args.rounds)
        big, message = _hostile(engine, docs)
        print(
            f"{label:>13}: {len(engine.rules):3d} rules, stage {per_event:7.2f} µs/event ({alerts} alerts); "
            f"complete on {on / len(docs) * 1e6:7.2f} µs/event (+{(on - off) / len(docs) * 1e6:.2f}); "
            f"7.5 kB EXECVE {big:8.1f} µs, 1 MiB message {message:9.1f} µs"
        )


if __name__ == "__main__":
    main()
