"""``secstream run``: argument handling, progress bar and the closing summary around the embedded runner."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import sys
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from processors.errors import ConfigError, SecstreamError
from streams.build import build_pipeline
from streams.config import bundled_config_dir, load_config, with_syslog_year
from streams.gcpolicy import apply_streaming_gc_policy
from streams.runner import InputSpec, OutputError, OutputSink, RunResult, run_pipeline, stdout_gone

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
        if path != "-":
            _check_input(Path(path))
    return [InputSpec(p, "auditd") for p in audit] + [InputSpec(p, "syslog") for p in syslog]


def _check_input(path: Path) -> None:
    """A readable file or named pipe (``mkfifo``, ``<(tail -f ...)``), else a ConfigError saying what it is."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"input file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"input file {path} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"input {path} is a directory, not a file")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
        raise ConfigError(f"input {path} is not a file or a named pipe")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"input file {path} cannot be read: permission denied")


def _printable(text: str) -> str:
    """Text for a terminal: control characters (a crafted record type can hold ESC sequences) escaped."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _top(counter: Counter[str], limit: int = 12) -> list[tuple[str, int]]:
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [(_printable(name), count) for name, count in ranked]


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
    """Execute ``secstream run`` and return the exit code.

    0: done; 1: an input ended badly (processed up to the damage); 2: something the user can fix (a
    setting, an input path, the output place, a full disk, a closed pipe) or the run was interrupted.
    """
    try:
        config = load_config(args.config)
        if getattr(args, "year", None) is not None:
            config = with_syslog_year(config, args.year)
        inputs = _inputs(args)
        if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
            raise ConfigError(f"--out {args.out} is a file, not a directory")
    except ConfigError as exc:
        sys.stderr.write(f"secstream run: {exc}\n")
        return 2
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
            result = asyncio.run(_run(config, inputs, Path(args.out) if args.out else None, advance))
    except OutputError as exc:
        if not args.out:
            stdout_gone()
        sys.stderr.write(f"secstream run: {exc}\n")
        return 2
    except SecstreamError as exc:  # a rule file, blocklist or database the configuration names is unusable
        sys.stderr.write(f"secstream run: {exc}\n")
        return 2
    except KeyboardInterrupt:  # before the signal handlers are in place (building the pipeline)
        sys.stderr.write("secstream run: interrupted before any input was read\n")
        return 2
    return _report(args, result)


def _report(args: argparse.Namespace, result: RunResult) -> int:
    summary = format_summary(result)
    try:
        (sys.stdout if args.out else sys.stderr).write(summary)
        if args.out:
            sys.stdout.write(f"  output:       {Path(args.out).resolve()}/{{events,detections,deadletter}}.jsonl\n")
            sys.stdout.flush()
    except BrokenPipeError:
        stdout_gone()
    for error in result.input_errors:
        sys.stderr.write(f"secstream run: {_printable(error)}\n")
    if result.stopped_by:
        sys.stderr.write(f"secstream run: stopped by {result.stopped_by}; in-flight events were flushed\n")
        return 2 if result.stopped_by == "SIGINT" else 0
    return 1 if result.input_errors else 0


async def _run(config: Any, inputs: list[InputSpec], out: Path | None, advance: Any) -> RunResult:
    # The pipeline first: a configuration it cannot use leaves no empty output files behind.
    pipeline = await build_pipeline(config)
    try:
        sink = OutputSink(out)
        try:
            apply_streaming_gc_policy()
            return await run_pipeline(pipeline, inputs, sink, progress=advance, handle_signals=True)
        finally:
            sink.close()
    finally:
        await pipeline.close()
