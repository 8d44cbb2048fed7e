"""Benchmark: the whole stage graph in process (``secstream run``'s engine) on a multi-host audit corpus.

Corpus: msticpy's ``auditd_log.txt`` replayed ``--reps`` times over ``--hosts`` hosts with shifted times and
new serials (written under ``bench/out``). Reports raw lines/s and events/s end to end (parse, coalesce,
decode, process tree, IoCs + base64, enrichment against the local blocklist, sessions, rules, detectors,
JSON serialisation to files), and the same with enrichment disabled. msticpy has no streaming equivalent;
the per-stage comparisons with msticpy are in the other benchmarks.

Run: /work/venv/bin/python bench/bench_pipeline.py [--reps 40] [--hosts 8] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import time
from pathlib import Path

from streams.build import build_pipeline
from streams.config import load_config
from streams.gcpolicy import apply_streaming_gc_policy
from streams.runner import InputSpec, OutputSink, run_pipeline

_HEADER = re.compile(r"audit\((\d+\.\d+):(\d+)\)")


def make_corpus(template: Path, out: Path, reps: int, hosts: int) -> int:
    lines = template.read_text().splitlines()
    with out.open("w") as handle:
        for rep in range(reps):
            node = f"host-{rep % hosts:02d}"
            for line in lines:
                shifted = _HEADER.sub(
                    lambda m, rep=rep: f"audit({float(m.group(1)) + rep * 3600:.3f}:{int(m.group(2)) + rep * 100000})",
                    line,
                )
                handle.write(f"node={node} {shifted}\n")
    return reps * len(lines)


async def run_once(corpus: Path, out: Path, enrichment: bool) -> tuple[float, int, int]:
    config = load_config(environ={"SECSTREAM_ENRICHMENT__ENABLED": "true" if enrichment else "false"})
    pipeline = await build_pipeline(config)
    apply_streaming_gc_policy()  # as `secstream run` does
    sink = OutputSink(out)
    started = time.process_time()
    try:
        result = await run_pipeline(pipeline, [InputSpec(str(corpus), "auditd")], sink)
    finally:
        sink.close()
        await pipeline.close()
    cpu = time.process_time() - started
    return cpu, sum(result.stats.lines_in.values()), sum(result.stats.events_out.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40, help="replays of auditd_log.txt (1708 lines each)")
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    args = parser.parse_args()
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    corpus = out / "pipeline_audit.log"
    template = args.shared / "testdata" / "msticpy" / "tests" / "testdata" / "auditd_log.txt"
    lines = make_corpus(template, corpus, args.reps, args.hosts)
    print(f"corpus: {lines} lines, {args.hosts} hosts ({corpus})")
    print(f"{'configuration':<28} {'CPU s':>7} {'lines/s':>9} {'events/s':>9}")
    for enrichment in (False, True):
        best = None
        for _ in range(2):
            cpu, lines_in, events = asyncio.run(run_once(corpus, out / "pipeline_out", enrichment))
            best = min(best or (cpu, lines_in, events), (cpu, lines_in, events))
        cpu, lines_in, events = best
        name = "with enrichment (blocklist)" if enrichment else "without enrichment"
        print(f"{name:<28} {cpu:>7.2f} {lines_in / cpu:>9.0f} {events / cpu:>9.0f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
