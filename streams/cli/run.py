"""``secstream run``: argument handling, progress bar and the closing summary around the embedded runner."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from processors.errors import ConfigError
from streams.build import build_pipeline
from streams.config import bundled_config_dir, load_config
from streams.gcpolicy import apply_streaming_gc_policy
from streams.runner import InputSpec, OutputSink, RunResult, run_pipeline

__all__ = ["format_summary", "run_command"]


def _inputs(args: argparse.Namespace) -> list[InputSpec]:
    audit = args.audit or []
    syslog = args.syslog or []
    if not audit and not syslog:
        samples = bundled_config_dir() / "samples"
        audit, syslog = [str(samples / "audit.log")], [str(samples / "syslog.log")]
    if (audit + syslog).count("-") > 1:
        raise ConfigError("only one input can be stdin (-)")
    for path in audit + syslog:
        if path != "-" and not Path(path).is_file():
            raise ConfigError(f"input file {path} does not exist")
    return [InputSpec(p, "auditd") for p in audit] + [InputSpec(p, "syslog") for p in syslog]


def _top(counter: Counter[str], limit: int = 12) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:limit]


def format_summary(result: RunResult) -> str:
    """Render the end-of-run summary as plain text."""
    stats = result.stats
    lines = [
        f"secstream run: {sum(stats.lines_in.values())} lines in {result.seconds:.2f}s "
        f"({', '.join(f'{k} {v}' for k, v in sorted(stats.lines_in.items())) or 'no input'})",
        f"  events out:   {sum(stats.events_out.values())}",
    ]
    lines += [f"    {name:<40} {count}" for name, count in _top(stats.events_out)]
    lines.append(f"  detections:   {sum(stats.detections.values())}")
    lines += [f"    {name:<40} {count}" for name, count in _top(stats.detections, 50)]
    lines.append(f"  bad lines:    {sum(stats.bad_input.values())}")
    lines += [f"    {name:<40} {count}" for name, count in _top(stats.bad_input)]
    audit = stats.audit
    lines.append(
        f"  audit:        partial {audit['partial']}, late {audit['late']}, duplicate {audit['duplicate']}, "
        f"overflow {audit['overflow']}, orphan EOE {audit['orphan_eoe']}"
    )
    tree = stats.proctree
    lines.append(
        f"  processes:    {tree['live']} live; evicted {tree['evicted_exited']} exited, {tree['evicted_idle']} idle,"
        f" {tree['evicted_overflow']} over the limit; {tree['backfilled']} back-filled"
    )
    hosts = stats.hosts
    if hosts["spilled"]:
        lines.append(
            f"  hosts:        {hosts['in_memory']} in memory; spilled to disk {hosts['spilled']} times,"
            f" read back {hosts['restored']} times"
        )
    hits = sum(v for k, v in stats.enrichment.items() if k.endswith(":hit"))
    lines.append(f"  enrichment:   {hits} hits")
    lines += [f"    {name:<40} {count}" for name, count in _top(stats.enrichment)]
    return "\n".join(lines) + "\n"


def run_command(args: argparse.Namespace) -> int:
    """Execute ``secstream run`` and return the exit code."""
    try:
        config = load_config(args.config)
        inputs = _inputs(args)
    except ConfigError as exc:
        sys.stderr.write(f"secstream run: {exc}\n")
        return 2
    sink = OutputSink(Path(args.out) if args.out else None)
    show_progress = not args.no_progress and sys.stderr.isatty() and not any(spec.live for spec in inputs)
    total = sum(Path(spec.path).stat().st_size for spec in inputs if not spec.live)
    progress_ctx: Any = nullcontext()
    advance = lambda _n: None  # noqa: E731 - replaced below when a bar is shown
    if show_progress:
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        progress_ctx = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
    try:
        with progress_ctx as bar:
            if bar is not None:
                task = bar.add_task("processing", total=total)
                advance = lambda n: bar.advance(task, n)  # noqa: E731
            result = asyncio.run(_run(config, inputs, sink, advance))
    except ConfigError as exc:  # e.g. a blocklist or GeoIP database the enrichment stage cannot use
        sys.stderr.write(f"secstream run: {exc}\n")
        return 2
    finally:
        sink.close()
    summary = format_summary(result)
    (sys.stdout if args.out else sys.stderr).write(summary)
    if args.out:
        sys.stdout.write(f"  output:       {Path(args.out).resolve()}/{{events,detections,deadletter}}.jsonl\n")
    return 0


async def _run(config: Any, inputs: list[InputSpec], sink: OutputSink, advance: Any) -> RunResult:
    pipeline = await build_pipeline(config)
    apply_streaming_gc_policy()
    try:
        return await run_pipeline(pipeline, inputs, sink, progress=advance)
    finally:
        await pipeline.close()
