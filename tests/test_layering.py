"""The import rule: drivers → graph → stage packages → contracts, and msticpy facades on top of the stages.

A subpackage of ``processors/`` is a stream stage; a flat module of ``processors/`` (other than the shared
``errors`` and ``document``) is a msticpy name, a facade that no stage and nothing in ``streams/`` imports.
The stream never loads polars or pandas: they are the batch API's.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROCESSORS = REPO / "processors"
SHARED_FLAT = {"errors", "document", "__init__"}
FACADES = frozenset(
    {f"processors.{path.stem}" for path in PROCESSORS.glob("*.py") if path.stem not in SHARED_FLAT}
    | {"processors.tiproviders"}
)
BATCH_ONLY = frozenset({"polars", "pandas", "numpy"})


def _engine_modules() -> list[Path]:
    """Every module of a stage package, of the drivers and of the contracts."""
    stages = [
        path
        for sub in PROCESSORS.iterdir()
        if sub.is_dir() and (sub / "__init__.py").exists() and f"processors.{sub.name}" not in FACADES
        for path in sub.rglob("*.py")
    ]
    return sorted(stages + list((REPO / "streams").rglob("*.py")) + list((REPO / "schemas").rglob("*.py")))


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _is_under(name: str, roots: frozenset[str]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


@pytest.mark.parametrize("path", _engine_modules(), ids=lambda path: str(path.relative_to(REPO)))
def test_engines_and_drivers_import_no_facade(path: Path) -> None:
    """No stage, driver or contract module imports a msticpy facade module or a batch-only library."""
    bad = sorted(name for name in _imported(path) if _is_under(name, FACADES | BATCH_ONLY))
    assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_importing_the_graph_loads_no_facade_and_no_polars() -> None:
    """At run time too (``importlib`` could hide an import): the stage graph loads no facade and no polars."""
    probe = (
        "import sys, streams.graph, processors.ioc.observables, processors.detect.rules;"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.split()
    bad = sorted({name.split(".")[0] if _is_under(name, BATCH_ONLY) else name for name in loaded})
    bad = [name for name in bad if _is_under(name, FACADES | BATCH_ONLY)]
    assert not bad, f"importing the graph loaded {bad}"
