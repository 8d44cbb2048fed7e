"""The Enricher stream stage: bounded waits, pending lookups, rate limiting, caching and ECS output."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from structlog.testing import capture_logs

from processors.enrich.enricher import Enricher, EnricherSettings
from processors.enrich.geoip import GeoLiteReader
from processors.enrich.http import HttpSettings
from processors.enrich.providers import OTX, GreyNoise, LocalBlocklist, VirusTotal
from processors.enrich.ratelimit import RateLimits
from schemas import schema_for

SAMPLE_BLOCKLIST = Path(__file__).resolve().parents[3] / "config" / "ti" / "sample_blocklist.csv"
FAST = HttpSettings(backoff_base_s=0.001, backoff_max_s=0.01, max_retries=2)
OPEN = RateLimits(per_minute=60_000, burst=1000, max_concurrency=16)


def event(n: int, src: str | None = None, dst: str | None = None, **iocs: list[str]) -> dict[str, Any]:
    """A minimal valid event document."""
    doc: dict[str, Any] = {
        "@timestamp": "2019-03-01T23:23:44.869Z",
        "event": {"id": f"{n:032x}", "kind": "event", "module": "auditd"},
        "host": {"name": "web-1"},
    }
    if src:
        doc["source"] = {"ip": src}
    if dst:
        doc["destination"] = {"ip": dst, "port": 443}
    if iocs:
        doc["secstream"] = {"iocs": iocs}
    return doc


def statuses(doc: dict[str, Any], provider: str | None = None) -> list[str]:
    """The enrichment statuses written into a document: hits, then lookups that could not answer."""
    written = doc.get("secstream", {}).get("enrichment", {})
    return [
        e["status"]
        for e in [*written.get("matches", []), *written.get("incomplete", [])]
        if provider is None or e["provider"] == provider
    ]


class TestEnricher:
    async def test_local_blocklist_and_geo__ecs_output(self, geolite_folder: Path) -> None:
        """A listed destination is a hit with its details; public addresses get ECS geo/as; docs validate."""
        enricher = Enricher(
            EnricherSettings(),
            providers=[LocalBlocklist(SAMPLE_BLOCKLIST)],
            geoip=GeoLiteReader(db_folder=str(geolite_folder)),
        )
        docs = [
            event(1, src="151.101.0.223", dst="203.0.113.66", url=["http://203.0.113.66/payload.sh"]),
            event(2, src="10.0.0.5", dst="81.2.69.160"),
        ]
        out = await enricher.enrich(docs)
        assert len(out) == 2
        first = out[0]
        hits = first["threat"]["enrichments"]
        assert [e["matched"] for e in hits] == [
            {"atomic": "203.0.113.66", "field": "destination.ip", "type": "indicator_match_rule"},
            {"atomic": "http://203.0.113.66/payload.sh", "field": "secstream.iocs.url", "type": "indicator_match_rule"},
        ]
        assert hits[0]["indicator"] == {
            "type": "ipv4-addr",
            "provider": "LocalBlocklist",
            "confidence": "High",
            "ip": "203.0.113.66",
            "description": "Sample C2 server used by the demo attack (reverse shell on 4444)",
        }
        assert hits[1]["indicator"]["type"] == "url"
        assert hits[1]["indicator"]["url"] == {"original": "http://203.0.113.66/payload.sh"}
        matches = first["secstream"]["enrichment"]["matches"]
        assert [(m["provider"], m["atomic"], m["status"], m["severity"]) for m in matches] == [
            ("LocalBlocklist", "203.0.113.66", "hit", "high"),
            ("LocalBlocklist", "http://203.0.113.66/payload.sh", "hit", "high"),
        ]
        assert matches[0]["details"]["source"] == "sample"
        assert first["source"]["geo"]["city_name"] == "San Francisco"
        assert first["source"]["as"] == {"number": 54113, "organization": {"name": "FASTLY"}}
        assert "geo" not in first["destination"]  # documentation range: not in the database
        assert "geo" not in out[1]["source"] and out[1]["destination"]["geo"]["country_iso_code"] == "GB"
        assert "threat" not in out[1] and "secstream" not in out[1], "misses are counted, not written"
        assert enricher.outcomes == {"LocalBlocklist:hit": 2, "LocalBlocklist:miss": 3}
        assert "threat" not in docs[0] and "geo" not in docs[0]["source"], "inputs are not modified"
        for doc in out:
            jsonschema.validate(doc, schema_for("events"))
        await enricher.close()

    async def test_slow_provider__pending_not_waited_for(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """Lookups slower than max_wait_s are recorded pending; the events are emitted; the cache warms later."""
        ti_server.script("185.92.220.35", kit.Reply(200, None, {}, 30.0))
        prov = OTX(AuthKey="key", base_url=ti_server.url, limits=OPEN, http_settings=FAST)
        enricher = Enricher(EnricherSettings(max_wait_s=1.0), providers=[prov])
        out = await enricher.enrich([event(1, src="185.92.220.35"), event(2, src="213.159.214.86")])
        assert statuses(out[0]) == ["pending"]
        assert statuses(out[1]) == ["hit"]
        assert enricher.stats["pending"] == 1 and enricher.stats["background_in_flight"] == 1
        ti_server.release_slow()
        assert await enricher.drain(10) == 0
        again = await enricher.enrich([event(3, src="185.92.220.35")])
        assert statuses(again[0]) == ["hit"]
        assert ti_server.count("185.92.220.35") == 1, "the background answer warmed the cache"
        await enricher.close()

    async def test_429_server__retried_then_rate_limited_without_stalling(
        self, ti_server: Any, kit: SimpleNamespace
    ) -> None:
        """A 429 with Retry-After is retried; a persistent 429 becomes rate_limited (not cached, retried later)."""
        ti_server.script("185.92.220.35", kit.Reply(429, {}, {"Retry-After": "0"}), kit.Reply(200))
        ti_server.script("213.159.214.86", kit.Reply(429, {}, {"Retry-After": "0"}))
        prov = OTX(AuthKey="key", base_url=ti_server.url, limits=OPEN, http_settings=FAST)
        enricher = Enricher(EnricherSettings(max_wait_s=5.0), providers=[prov])
        out = await enricher.enrich([event(1, src="185.92.220.35"), event(2, src="213.159.214.86")])
        assert statuses(out[0]) == ["hit"]
        assert statuses(out[1]) == ["rate_limited"]
        assert ti_server.count("185.92.220.35") == 2
        assert ti_server.count("213.159.214.86") == 3  # first try + 2 retries
        assert enricher.stats["rate_limited"] == 1
        await enricher.enrich([event(3, src="213.159.214.86")])
        assert ti_server.count("213.159.214.86") == 6, "a rate-limited answer is not cached"
        await enricher.close()

    async def test_token_bucket__rate_limited_immediately(self, ti_server: Any) -> None:
        """With VirusTotal's budget exhausted, extra lookups are rate_limited at once and never reach the server."""
        prov = VirusTotal(
            AuthKey="key", base_url=ti_server.url, limits=RateLimits(per_minute=4, burst=4), clock=lambda: 0.0
        )
        enricher = Enricher(EnricherSettings(max_wait_s=5.0), providers=[prov])
        ips = [f"185.92.220.{i}" for i in range(10, 20)]
        out = await enricher.enrich([event(i, src=ip) for i, ip in enumerate(ips)])
        flat = [s for doc in out for s in statuses(doc)]
        assert flat.count("hit") == 4 and flat.count("rate_limited") == 6
        assert ti_server.count("/api/v3/") == 4
        await enricher.close()

    async def test_repeated_observables__cache_hit_ratio(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """Repeats within a batch are looked up once; later batches are served from the cache."""
        prov = GreyNoise(AuthKey="key", base_url=ti_server.url, limits=OPEN)
        enricher = Enricher(EnricherSettings(), providers=[prov])
        batch = [event(i, src=kit.BAD_IPS[i % 3]) for i in range(30)]
        await enricher.enrich(batch)
        assert ti_server.count() == 3
        for _ in range(3):
            out = await enricher.enrich(batch)
        assert ti_server.count() == 3
        assert all(statuses(doc) == ["hit"] for doc in out)
        stats = enricher.stats
        assert stats["cache_hits"] == 9 and stats["cache_misses"] == 3
        assert stats["cache_hit_ratio"] == pytest.approx(0.75)
        await enricher.close()

    async def test_failures__recorded_never_dropped(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """500s and unreachable providers are recorded failed; every event is still emitted."""
        ti_server.script("185.92.220.35", kit.Reply(500))
        good = OTX(AuthKey="key", base_url=ti_server.url, limits=OPEN, http_settings=FAST)
        dead = GreyNoise(AuthKey="key", base_url="http://127.0.0.1:9", limits=OPEN, http_settings=FAST)
        enricher = Enricher(EnricherSettings(), providers=[good, dead])
        out = await enricher.enrich([event(1, src="185.92.220.35"), event(2, dst="213.159.214.86")])
        assert len(out) == 2
        assert statuses(out[0], "OTX") == ["failed"] and statuses(out[0], "GreyNoise") == ["failed"]
        assert statuses(out[1], "OTX") == ["hit"] and statuses(out[1], "GreyNoise") == ["failed"]
        assert enricher.stats["providers"]["GreyNoise"]["failed"] == 2
        await enricher.close()

    async def test_private_and_iocs__skipped_and_typed(self, ti_server: Any) -> None:
        """Private addresses are skipped for remote providers; secstream.iocs of several types are looked up."""
        prov = OTX(AuthKey="key", base_url=ti_server.url, limits=OPEN)
        enricher = Enricher(EnricherSettings(), providers=[prov])
        doc = event(1, src="10.1.1.1", dns=["www.python.com"], md5_hash=["7657fcb7d772448a6d8504e4b20168b7"])
        out = await enricher.enrich([doc])
        by_atomic = {e["matched"]["atomic"]: e for e in out[0]["threat"]["enrichments"]}
        assert "10.1.1.1" not in by_atomic and enricher.outcomes["OTX:skipped"] == 1
        assert by_atomic["www.python.com"]["indicator"]["type"] == "domain-name"
        assert by_atomic["www.python.com"]["indicator"]["url"] == {"domain": "www.python.com"}
        md5 = by_atomic["7657fcb7d772448a6d8504e4b20168b7"]
        assert md5["indicator"]["type"] == "file"
        assert md5["indicator"]["file"] == {"hash": {"md5": "7657fcb7d772448a6d8504e4b20168b7"}}
        assert md5["matched"]["field"] == "secstream.iocs.md5_hash"
        assert ti_server.count("10.1.1.1") == 0
        jsonschema.validate(out[0], schema_for("events"))
        await enricher.close()

    async def test_api_key__never_logged(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """No log line of a failing batch contains the API key."""
        ti_server.script("/api/v3/", kit.Reply(503))
        prov = VirusTotal(AuthKey="top-secret-key-42", base_url=ti_server.url, limits=OPEN, http_settings=FAST)
        enricher = Enricher(EnricherSettings(), providers=[prov])
        with capture_logs() as logs:
            out = await enricher.enrich([event(1, src="185.92.220.35")])
        assert statuses(out[0]) == ["failed"]
        assert logs and "top-secret" not in repr(logs) + repr(out)
        await enricher.close()

    async def test_close__cancels_background(self, ti_server: Any, kit: SimpleNamespace) -> None:
        """close() cancels lookups still running in the background."""
        ti_server.script("185.92.220.35", kit.Reply(200, None, {}, 30.0))
        prov = OTX(AuthKey="key", base_url=ti_server.url, limits=OPEN)
        enricher = Enricher(EnricherSettings(max_wait_s=0.01), providers=[prov])
        await enricher.enrich([event(1, src="185.92.220.35")])
        assert enricher.stats["background_in_flight"] == 1
        await enricher.close()
        await asyncio.sleep(0)
        assert enricher.stats["background_in_flight"] == 0
