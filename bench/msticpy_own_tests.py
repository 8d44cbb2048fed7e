"""Run msticpy's own sectools unit tests against secstream, and against msticpy itself as the baseline.

msticpy's tests are not ours and are never committed: point ``MSTICPY_TESTS`` (or the first argument) at a
directory holding msticpy's ``tests`` package as checked out from github.com/microsoft/msticpy (the
``sectools/test_*.py`` files and a ``unit_test_lib.py``); ``MSTICPY_TESTDATA`` at its test data (default:
``../shared/testdata/msticpy/tests/testdata``). Without them the script says so and exits 0.

Each target runs in its own process. Before collection, every module path a test imports a seed module
from (``msticpy.sectools.X`` of 1.5, and the later ``msticpy.analysis.data.X``, ``msticpy.transform.X``,
``msticpy.context.X``...) is bound to

* ``secstream``: ``processors.X``; the entity names of ``msticpy.datamodel.entities`` that secstream has
  (``Host``, ``IpAddress``, ...) are taken from ``processors.entities`` (the import a migrated notebook
  changes, docs/migrating-from-msticpy.md); ``msticpy.common.exceptions`` stays msticpy's, so its
  ``pytest.raises(MsticpyException)`` checks secstream's exception compatibility;
* ``msticpy``: where the installed msticpy (3.x) keeps that module today.

``pd.read_pickle`` of a missing ``*.pkl`` reads the ``*.from_pkl.csv`` conversion beside it; a minimal
``pytest_check`` stands in when that plugin is not installed.

    python bench/msticpy_own_tests.py [TESTS_DIR] [--target secstream|msticpy|both]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TEST_FILES = (
    "test_auditdextract.py",
    "test_b64unpack.py",
    "test_cmd_line.py",
    "test_geoip.py",
    "test_ioc_extractor.py",
    "test_linuxsyslog.py",
    "test_process_tree_utils.py",
    "test_tiproviders.py",
    "test_vtlookup.py",
    "test_vtlookupv3.py",
)
# module name -> where msticpy 3 keeps it
MSTICPY3_HOME = {
    "auditdextract": "msticpy.transform.auditdextract",
    "base64unpack": "msticpy.transform.base64unpack",
    "cmd_line": "msticpy.transform.cmd_line",
    "iocextract": "msticpy.transform.iocextract",
    "proc_tree_builder": "msticpy.transform.proc_tree_builder",
    "proc_tree_build_winlx": "msticpy.transform.proc_tree_build_winlx",
    "proc_tree_build_mde": "msticpy.transform.proc_tree_build_mde",
    "proc_tree_schema": "msticpy.transform.proc_tree_schema",
    "process_tree_utils": "msticpy.transform.process_tree_utils",
    "syslog_utils": "msticpy.analysis.syslog_utils",
    "geoip": "msticpy.context.geoip",
    "tilookup": "msticpy.context.tilookup",
    "vtlookup": "msticpy.context.vtlookupv3.vtlookup",
    "vtlookupv3": "msticpy.context.vtlookupv3.vtlookupv3",
    "tiproviders": "msticpy.context.tiproviders",
}
PREFIXES = (
    "msticpy.sectools",
    "msticpy.analysis.data",
    "msticpy.analysis.data_processing",
    "msticpy.analysis",
    "msticpy.transform",
    "msticpy.context",
    "msticpy.context.vtlookupv3",
)


def _package(name: str) -> types.ModuleType:
    """The package ``name``: imported if it exists, else an empty stand-in (paths that moved since 1.5)."""
    if name in sys.modules:
        return sys.modules[name]
    try:
        return importlib.import_module(name)
    except ImportError:
        parent, _, leaf = name.rpartition(".")
        module = types.ModuleType(name)
        module.__path__ = []
        sys.modules[name] = module
        if parent:
            setattr(_package(parent), leaf, module)
        return module


def _bind(path: str, module: types.ModuleType) -> None:
    parent, _, leaf = path.rpartition(".")
    sys.modules[path] = module
    setattr(_package(parent), leaf, module)


def _exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def bind_modules(target: str) -> None:
    """Bind every import path of a seed module to ``target``'s module (see the module docstring)."""
    real = {prefix for prefix in PREFIXES if _exists(prefix)}
    for name, home in MSTICPY3_HOME.items():
        try:
            module = importlib.import_module(f"processors.{name}" if target == "secstream" else home)
        except Exception as exc:  # e.g. a msticpy extra that is not installed: its tests fail
            print(f"not bound: {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        for prefix in PREFIXES:
            # msticpy's own modules import its real paths: for secstream, bind only the paths msticpy no
            # longer has (1.5's ``msticpy.sectools``, ...), so msticpy's widgets the tests call keep working
            if target == "msticpy" or prefix not in real:
                _bind(f"{prefix}.{name}", module)
        if target == "secstream" and name == "tiproviders":
            for sub in ("ti_provider_base", "http_base", "alienvault_otx", "greynoise", "ibm_xforce", "virustotal"):
                _bind(f"msticpy.sectools.tiproviders.{sub}", importlib.import_module(f"processors.tiproviders.{sub}"))
    if target == "secstream":
        ours = importlib.import_module("processors.entities")
        theirs = importlib.import_module("msticpy.datamodel.entities")
        for name in ours.__all__:
            setattr(theirs, name, getattr(ours, name))


def _pytest_check_stand_in() -> None:
    try:
        importlib.import_module("pytest_check")
    except ImportError:
        module = types.ModuleType("pytest_check")

        def is_not_none(value: Any, msg: str = "") -> None:
            assert value is not None, msg

        def equal(first: Any, second: Any, msg: str = "") -> None:
            assert first == second, msg

        module.is_not_none = is_not_none  # type: ignore[attr-defined]
        module.equal = equal  # type: ignore[attr-defined]
        sys.modules["pytest_check"] = module


def _shared_testdata() -> str:
    for shared in (os.environ.get("SECSTREAM_SHARED"), REPO.parent / "shared", REPO.parent.parent / "shared"):
        if shared and (Path(shared) / "testdata" / "msticpy").is_dir():
            return str(Path(shared) / "testdata" / "msticpy" / "tests" / "testdata")
    return ""


def _read_pickle_from_csv() -> None:
    import pandas as pd

    real = pd.read_pickle

    def read_pickle(path: Any, *args: Any, **kwargs: Any) -> Any:
        source = Path(path)
        csv = source.with_name(source.stem + ".from_pkl.csv")
        if source.exists() or not csv.exists():
            return real(path, *args, **kwargs)
        if source.stem == "mde_proc_pub":
            dates = ["Timestamp", "ProcessCreationTime", "InitiatingProcessCreationTime"]
            dates.append("InitiatingProcessParentCreationTime")
            return pd.read_csv(csv, index_col=0, keep_default_na=False, parse_dates=dates)
        frame = pd.read_csv(csv, index_col=0)
        for column in ("TimeGenerated", "TimeCreatedUtc"):
            if column in frame.columns:
                frame[column] = pd.to_datetime(frame[column])
        return frame

    pd.read_pickle = read_pickle


class _Outcomes:
    """pytest plugin: one outcome per test id."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        # a test's outcome is its call's, unless its setup or teardown failed (or it was skipped)
        if report.when == "call" or report.outcome != "passed":
            self.outcomes[report.nodeid] = report.outcome

    def pytest_collectreport(self, report: Any) -> None:
        if report.outcome == "failed":
            self.outcomes[report.nodeid] = "error"


def run_one(target: str, tests_dir: Path) -> dict[str, str]:
    """Run the test files in this process with the modules bound to ``target``; outcome per test id."""
    import pytest

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(tests_dir.parent))
    bind_modules(target)
    _read_pickle_from_csv()
    _pytest_check_stand_in()
    files = [str(tests_dir / "sectools" / name) for name in TEST_FILES if (tests_dir / "sectools" / name).exists()]
    plugin = _Outcomes()
    pytest.main(
        ["-q", "-p", "no:cacheprovider", "--continue-on-collection-errors", "--rootdir", str(tests_dir.parent), *files],
        plugins=[plugin],
    )
    return plugin.outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tests_dir", nargs="?", default=os.environ.get("MSTICPY_TESTS"))
    parser.add_argument("--target", choices=("secstream", "msticpy", "both"), default="both")
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.tests_dir or not (Path(args.tests_dir) / "sectools").is_dir():
        print("skipped: set MSTICPY_TESTS to a checkout of msticpy's tests/ (with sectools/test_*.py)")
        return 0
    tests_dir = Path(args.tests_dir).resolve()
    os.environ.setdefault("MSTICPY_TESTDATA", _shared_testdata())
    if args.run:
        outcomes = run_one(args.target, tests_dir)
        print("OUTCOMES " + json.dumps(outcomes))
        return 0
    targets = ["secstream", "msticpy"] if args.target == "both" else [args.target]
    results: dict[str, dict[str, str]] = {}
    for target in targets:
        proc = subprocess.run(
            [sys.executable, __file__, str(tests_dir), "--target", target, "--run"],
            capture_output=True,
            text=True,
            check=False,
            cwd=tests_dir.parent,
        )
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("OUTCOMES ")), None)
        if line is None:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return 1
        results[target] = json.loads(line.removeprefix("OUTCOMES "))
    # a file that fails to import under one target fails each of its tests there
    tests = {test for outcomes in results.values() for test in outcomes if "::" in test}
    for outcomes in results.values():
        for node, outcome in list(outcomes.items()):
            if "::" not in node and outcome == "error":
                del outcomes[node]
                outcomes.update({test: "error (import)" for test in tests if test.startswith(node + "::")})
    ids = sorted({test for outcomes in results.values() for test in outcomes})
    print("| test | " + " | ".join(targets) + " |")
    print("|---|" + "---|" * len(targets))
    for test in ids:
        print(f"| {test} | " + " | ".join(results[t].get(test, "-") for t in targets) + " |")
    for target in targets:
        outcomes = list(results[target].values())
        counted = [o for o in outcomes if o != "skipped"]
        passed = outcomes.count("passed")
        print(f"{target}: {passed} passed of {len(counted)} (not skipped), {outcomes.count('skipped')} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
