"""``secstream rules list|lint|test``: the Sigma rules a configuration runs, their errors, what would fire.

* ``rules list``: the rules the configuration loads (after selection), one per line.
* ``rules lint PATH...``: load rule files and directories; every problem is one line (``file:line: reason``);
  exit 1 when there is any.
* ``rules test --events FILE``: run the rules on saved event documents (``events.jsonl`` from
  ``secstream run --out``) and print what would fire, and on which fields.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from processors.detect.sigma import CompiledRule, RuleSelection, SigmaEngine, compile_condition
from processors.detect.sigma.views import Row
from processors.errors import ConfigError
from streams.config import SecstreamConfig, load_config

__all__ = ["matched_fields", "register_rules_command"]

_VALUE_WIDTH = 120


def _engine(args: argparse.Namespace) -> SigmaEngine:
    config = load_config(args.config) if args.config else SecstreamConfig()
    sigma = config.detection.sigma
    selection = RuleSelection(sigma.ids, sigma.exclude_ids, sigma.tags, sigma.statuses, sigma.min_level)
    if getattr(args, "rules", None):
        return SigmaEngine.load([Path(p) for p in args.rules], selection)
    paths = [config.resolve_path(p) for p in sigma.rule_paths]
    return SigmaEngine.load(paths, selection, with_project_rules=sigma.use_project_rules)


def _write_problems(engine: SigmaEngine, out: TextIO) -> None:
    for error in engine.loaded.errors:
        out.write(f"error: {error}\n")
    for rule_id, reason in engine.loaded.skipped:
        out.write(f"skipped: {rule_id}: {reason}\n")


def _cmd_list(args: argparse.Namespace) -> int:
    engine = _engine(args)
    out = sys.stdout
    correlations = [meta for meta, _ in engine.correlations]
    for rule in [*engine.rules, *correlations]:
        out.write(f"{rule.id}  {rule.level:<13} {rule.source:<18} {rule.ruleset:<10} {rule.title}")
        out.write(f"  ({rule.author})\n" if rule.author else "\n")
    _write_problems(engine, sys.stderr)
    sys.stderr.write(f"{len(engine.rules)} rules" + (f", {len(correlations)} correlations\n" if correlations else "\n"))
    return 0


def _cmd_lint(args: argparse.Namespace) -> int:
    engine = SigmaEngine.load([Path(p) for p in args.paths])
    _write_problems(engine, sys.stdout)
    sys.stdout.write(f"{len(engine.rules)} rules OK, {len(engine.loaded.errors)} errors\n")
    return 1 if engine.loaded.errors else 0


def matched_fields(rule: CompiledRule, row: Row) -> list[tuple[str, str]]:
    """``(field, value)`` of each field leaf of ``rule`` that holds on ``row`` (what made the rule match)."""
    if rule.sigma is None:
        return []
    found: dict[str, str] = {}
    stack: list[Any] = [condition.parsed for condition in rule.sigma.detection.parsed_condition]
    while stack:
        node = stack.pop()
        args = getattr(node, "args", None)
        if args:
            stack.extend(args)
            continue
        field = getattr(node, "field", None)
        name = field.lower() if isinstance(field, str) else "_text"
        if name in found or not hasattr(node, "value"):
            continue
        if compile_condition(node)(row):
            value = row.get(name)
            found[name] = "" if value is None else value[:_VALUE_WIDTH]
    return sorted(found.items())


def _events(path: str) -> Iterator[tuple[int, dict[str, Any] | None]]:
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                yield number, None
                continue
            yield number, doc if isinstance(doc, dict) else None
    finally:
        if stream is not sys.stdin:
            stream.close()


def _cmd_test(args: argparse.Namespace) -> int:
    engine = _engine(args)
    _write_problems(engine, sys.stderr)
    out = sys.stdout
    fired: dict[str, int] = {}
    events = bad = 0
    for number, doc in _events(args.events):
        if doc is None:
            bad += 1
            sys.stderr.write(f"{args.events}:{number}: not a JSON event document, skipped\n")
            continue
        events += 1
        for rule, source, row in engine.matches(doc):
            fired[rule.id] = fired.get(rule.id, 0) + 1
            event = doc.get("event") or {}
            host = (doc.get("host") or {}).get("name", "?")
            out.write(f"{args.events}:{number} {host} {event.get('id', '?')} {rule.level} {rule.title} [{rule.id}]")
            out.write(f" by {rule.author}\n" if rule.author else "\n")
            for field, value in matched_fields(rule, row):
                out.write(f"    {source}.{field} = {value!r}\n")
    by_title = {rule.id: rule.title for rule in engine.rules}
    out.write(f"{events} events, {sum(fired.values())} alerts from {len(fired)} rules")
    out.write(f", {bad} lines skipped\n" if bad else "\n")
    for rule_id, count in sorted(fired.items(), key=lambda item: -item[1]):
        out.write(f"  {count:6d}  {by_title[rule_id]} [{rule_id}]\n")
    return 0


def _guarded(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = handler(args)
        except (ConfigError, OSError) as error:
            sys.stderr.write(f"secstream rules: {error}\n")
            return 2
        return code

    return run


def register_rules_command(subparsers: Any) -> None:
    """Add ``rules list|lint|test`` to the ``secstream`` subcommands.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers``.
    """
    rules = subparsers.add_parser(
        "rules",
        help="list, lint and test Sigma rules",
        description="The Sigma rules of a configuration ([detection.sigma]): list them, lint rule files, "
        "or run them on saved events.",
    )
    actions = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the rules the configuration runs")
    listing.add_argument("--config", metavar="FILE", help="TOML configuration (default: built-in defaults)")
    listing.set_defaults(handler=_guarded(_cmd_list))
    lint = actions.add_parser("lint", help="load rule files and directories and report every problem")
    lint.add_argument("paths", nargs="+", metavar="PATH", help="Sigma rule files or directories")
    lint.set_defaults(handler=_guarded(_cmd_lint))
    test = actions.add_parser("test", help="run the rules on saved event documents and show what would fire")
    test.add_argument("--events", required=True, metavar="FILE|-", help="events.jsonl from secstream run --out")
    test.add_argument("--config", metavar="FILE", help="TOML configuration (default: built-in defaults)")
    test.add_argument(
        "--rules", action="append", metavar="PATH", help="rule files or directories instead of the configured ones"
    )
    test.set_defaults(handler=_guarded(_cmd_test))
