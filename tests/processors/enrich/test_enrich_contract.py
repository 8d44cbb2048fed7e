"""The enrichment stage's contracts: its layering (no facade, no polars) and ECS-conformant output."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from processors.enrich.enricher import Enricher, EnricherSettings
from processors.enrich.providers import (
    BlocklistEntry,
    HttpProvider,
    LocalBlocklist,
    LookupResult,
    TIProvider,
    TISeverity,
)

REPO = Path(__file__).resolve().parents[3]
ENRICH = REPO / "processors" / "enrich"
#: The flat msticpy-named modules of processors/ (facades) and the one flat module stages may use.
FLAT_MODULES = {p.stem for p in (REPO / "processors").glob("*.py")} - {"__init__", "errors"} | {"tiproviders"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("processors."):
            names.add(node.value)  # importlib by name counts too
    return names


class TestLayering:
    def test_no_stage_module_imports_a_facade(self) -> None:
        """Nothing under processors/enrich imports a flat msticpy-named module (directly or by name)."""
        offending = []
        for path in sorted(ENRICH.rglob("*.py")):
            relative = path.relative_to(ENRICH).as_posix()
            for name in _imports(path):
                parts = name.split(".")
                if len(parts) >= 2 and parts[0] == "processors" and parts[1] in FLAT_MODULES:
                    offending.append(f"{relative}: {name}")
        assert offending == []

    def test_importing_the_stage_loads_no_polars_and_no_facade(self) -> None:
        """A fresh interpreter importing the enrichment stage has loaded neither polars nor a facade."""
        code = (
            "import sys\n"
            "import processors.enrich, processors.enrich.providers, processors.enrich.geoip\n"
            "print('\\n'.join(sorted(sys.modules)))\n"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        loaded = result.stdout.split()
        flat = [name for name in loaded if name.split(".")[:1] == ["processors"] and name.count(".") >= 1]
        assert "polars" not in loaded
        assert [name for name in flat if name.split(".")[1] in FLAT_MODULES] == []


class _Feed(TIProvider):
    """A provider answering every address with a high-severity record that has dates."""

    _IOC_QUERIES: ClassVar[dict[str, str]] = {t: "feed" for t in ("ipv4", "dns", "url", "sha256_hash")}

    async def _lookup(self, checked: LookupResult, rate_limit_wait_s: float | None) -> LookupResult:
        checked.result = True
        checked.set_severity(TISeverity.high)
        checked.details = {"first_seen": "2024-05-01", "Last Seen": 1717200000, "score": 9}
        checked.reference = "https://feed.example/indicator/1"
        return checked

    def parse_results(self, response: LookupResult) -> tuple[bool, TISeverity, Any]:
        return response.result, TISeverity.parse(response.severity), response.details

    def _preprocess(self, ioc: str, ioc_type: str) -> Any:
        from processors.enrich.providers.base import SanitizedObservable

        return SanitizedObservable(ioc, "ok")


def _flatten(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        return {path for k, v in value.items() for path in _flatten(v, f"{prefix}{k}.")}
    if isinstance(value, list):
        return {path for v in value for path in _flatten(v, prefix)}
    return {prefix.rstrip(".")}


async def _enriched() -> list[dict[str, Any]]:
    blocklist = LocalBlocklist(
        entries=[BlocklistEntry("203.0.113.66", "ipv4", TISeverity.warning, "listed C2", "test", ("c2",))]
    )
    enricher = Enricher(EnricherSettings(), providers=[blocklist, _Feed(name="feed")])
    docs = [
        {
            "destination": {"ip": "203.0.113.66"},
            "secstream": {
                "iocs": {
                    "dns": ["bad.example.com"],
                    "url": ["http://bad.example.com/x"],
                    "sha256_hash": ["ab" * 32],
                }
            },
        },
        {"source": {"ip": "198.51.100.1"}},
    ]
    out = await enricher.enrich(docs)
    await enricher.close()
    return out


class TestEcsOutput:
    async def test_enrichments__our_rules(self) -> None:
        """Matches only, ECS types and confidences, ISO dates, matched.* naming the document field."""
        out = await _enriched()
        entries = out[0]["threat"]["enrichments"]
        assert [(e["indicator"]["provider"], e["indicator"]["type"]) for e in entries] == [
            ("LocalBlocklist", "ipv4-addr"),
            ("feed", "ipv4-addr"),
            ("feed", "domain-name"),
            ("feed", "url"),
            ("feed", "file"),
        ]
        feed = entries[1]["indicator"]
        assert feed["first_seen"] == "2024-05-01T00:00:00.000Z" and feed["last_seen"] == "2024-06-01T00:00:00.000Z"
        assert feed["confidence"] == "High" and entries[0]["indicator"]["confidence"] == "Medium"
        assert feed["reference"] == "https://feed.example/indicator/1"
        assert entries[0]["matched"] == {
            "atomic": "203.0.113.66",
            "field": "destination.ip",
            "type": "indicator_match_rule",
        }
        matches = out[0]["secstream"]["enrichment"]["matches"]
        assert [m["provider"] for m in matches] == [e["indicator"]["provider"] for e in entries]
        assert matches[1]["details"] == {"first_seen": "2024-05-01", "Last Seen": 1717200000, "score": 9}
        assert out[1]["threat"]["enrichments"][0]["indicator"]["provider"] == "feed"

    async def test_enrichments__every_field_is_ecs(self) -> None:
        """Every field written under threat.* is defined by ECS, with an allowed value where ECS lists them."""
        ecs = _ecs_flat()
        out = await _enriched()
        fields = set().union(*(_flatten(doc.get("threat", {}), "threat.") for doc in out))
        assert fields and fields <= set(ecs), sorted(fields - set(ecs))
        for doc in out:
            for entry in doc["threat"]["enrichments"]:
                assert entry["indicator"]["type"] in ecs["threat.enrichments.indicator.type"]
                assert entry["indicator"]["confidence"] in ecs["threat.enrichments.indicator.confidence"]


def _ecs_flat() -> dict[str, list[str]]:
    """ECS field names → their expected values, read from ../shared/eval/ecs/ecs_flat.yml (never copied)."""
    override = os.environ.get("SECSTREAM_SHARED")
    candidates = [Path(override)] if override else []
    candidates += [REPO.parent / "shared", REPO.parent.parent / "shared"]
    path = next(
        (c / "eval" / "ecs" / "ecs_flat.yml" for c in candidates if (c / "eval/ecs/ecs_flat.yml").is_file()), None
    )
    if path is None:
        pytest.skip("ECS's ecs_flat.yml is not in ../shared/eval/ecs (set SECSTREAM_SHARED)")
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_values = False
    for line in path.read_text().splitlines():
        top = re.match(r"^([A-Za-z0-9_@.]+):\s*$", line)
        if top:
            current = fields.setdefault(top.group(1), [])
            in_values = False
        elif line.startswith("  expected_values:"):
            in_values = True
        elif in_values and line.startswith("  - ") and current is not None:
            current.append(line[4:].strip().strip("'\""))
        elif not line.startswith("  - "):
            in_values = False
    return fields


class TestConfiguration:
    def test_provider_limits_reach_the_clients(self, tmp_path: Path) -> None:
        """enrichment.<provider>.max_body_bytes / retry_after_max_s and max_detail_bytes reach the stage."""
        from streams.build import build_enricher
        from streams.config import load_config

        config = tmp_path / "secstream.toml"
        config.write_text(
            "[enrichment]\nblocklists = []\nmax_detail_bytes = 999\n"
            '[enrichment.otx]\nenabled = true\napi_key = "k-123456"\nmax_body_bytes = 1234\nretry_after_max_s = 7.0\n'
        )
        enricher = build_enricher(load_config(config))
        assert enricher is not None and enricher.settings.max_detail_bytes == 999
        otx = enricher.providers["otx"]
        assert isinstance(otx, HttpProvider)
        assert otx.http.settings.max_body_bytes == 1234 and otx.http.settings.max_retry_after_s == 7.0
