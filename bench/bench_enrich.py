"""Benchmark the enrichment stage: throughput with a warm cache and cache hit ratio on a Zipf-like stream.

The stream has realistic IoC repetition: source/destination addresses and URL/domain IoCs drawn from a
Zipf-like distribution over a few thousand observables. Providers: the local sample blocklist plus an
OTX-format provider served by a real local aiohttp server (127.0.0.1). Two passes are timed: a cold
pass (the cache fills; lookups run against the server, bounded by ``max_wait_s``) and a warm pass.

For comparison, msticpy's OTX provider (the reference, synchronous, one HTTP request per uncached
lookup) is pointed at the same server and timed on the first ``--msticpy-events`` events of the stream.

Run: /work/venv/bin/python bench/bench_enrich.py [--events 50000] [--observables 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from processors.enrich.enricher import Enricher, EnricherSettings
from processors.enrich.providers import OTX, LocalBlocklist
from processors.enrich.ratelimit import RateLimits

REPO = Path(__file__).resolve().parent.parent
BLOCKLIST = REPO / "config" / "ti" / "sample_blocklist.csv"
OTX_HIT = {"pulse_info": {"pulses": [{"name": "x", "tags": ["bad"], "references": []}]}}
OTX_MISS = {"pulse_info": {"pulses": []}, "sections": ["general"]}


class Server:
    """OTX-format answers from a real aiohttp server in a thread (1 in 5 observables is known-bad)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.requests = 0
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = OTX_HIT if hash(request.path) % 5 == 0 else OTX_MISS
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def start(self) -> str:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def zipf_sampler(values: list[str], s: float, rng: random.Random) -> Any:
    weights = [1.0 / (rank**s) for rank in range(1, len(values) + 1)]
    return lambda k: rng.choices(values, weights=weights, k=k)


def make_stream(events: int, observables: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    ips = [f"185.{rng.randrange(1, 255)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}" for _ in range(observables)]
    ips[5] = "203.0.113.66"  # the sample C2, frequent
    domains = [f"host{i}.site{i % 97}.com" for i in range(observables // 4)]
    ip_draw = zipf_sampler(ips, 1.1, rng)
    dom_draw = zipf_sampler(domains, 1.1, rng)
    srcs, dsts, doms = ip_draw(events), ip_draw(events), dom_draw(events)
    stream = []
    for n in range(events):
        doc: dict[str, Any] = {
            "@timestamp": "2019-03-01T23:23:44.869Z",
            "event": {"id": f"{n:032x}", "kind": "event", "module": "auditd"},
            "host": {"name": "web-1"},
            "source": {"ip": srcs[n]},
            "destination": {"ip": dsts[n], "port": 443},
        }
        if n % 3 == 0:
            doc["secstream"] = {"iocs": {"dns": [doms[n]], "url": [f"http://{doms[n]}/x.sh"]}}
        stream.append(doc)
    return stream


async def run_pass(enricher: Enricher, stream: list[dict[str, Any]], batch: int) -> tuple[float, int]:
    start = time.perf_counter()
    out = 0
    for i in range(0, len(stream), batch):
        out += len(await enricher.enrich(stream[i : i + batch]))
    return time.perf_counter() - start, out


async def bench_secstream(url: str, stream: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    otx = OTX(AuthKey="bench-key", base_url=url, limits=RateLimits(per_minute=None, max_concurrency=32))
    enricher = Enricher(EnricherSettings(max_wait_s=2.0), providers=[LocalBlocklist(BLOCKLIST), otx])
    cold_s, n1 = await run_pass(enricher, stream, batch)
    await enricher.drain(30)
    cold = enricher.stats
    warm_s, n2 = await run_pass(enricher, stream, batch)
    warm = enricher.stats
    await enricher.close()
    warm_hits = warm["cache_hits"] - cold["cache_hits"]
    warm_misses = warm["cache_misses"] - cold["cache_misses"]
    return {
        "events": n1,
        "cold_s": cold_s,
        "cold_eps": n1 / cold_s,
        "cold_hit_ratio": cold["cache_hit_ratio"],
        "cold_pending": cold["pending"],
        "warm_s": warm_s,
        "warm_eps": n2 / warm_s,
        "warm_hit_ratio": warm_hits / max(1, warm_hits + warm_misses),
        "http_requests": otx.stats()["http_requests"],
    }


def bench_msticpy(url: str, stream: list[dict[str, Any]]) -> dict[str, Any] | None:
    try:
        from msticpy.context.tiproviders.alienvault_otx import OTX as MsticpyOTX
    except ImportError:
        return None
    prov = MsticpyOTX(AuthKey="bench-key")
    prov._BASE_URL = url  # the reference, pointed at the same local server
    start = time.perf_counter()
    for doc in stream:
        for ip in (doc["source"]["ip"], doc["destination"]["ip"]):
            prov.lookup_ioc(ip, "ipv4")
    elapsed = time.perf_counter() - start
    return {"events": len(stream), "s": elapsed, "eps": len(stream) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--observables", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--msticpy-events", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    server = Server()
    url = server.start()
    try:
        stream = make_stream(args.events, args.observables, args.seed)
        ours = asyncio.run(bench_secstream(url, stream, args.batch))
        print(f"secstream Enricher: {ours['events']} events, batch {args.batch}, {args.observables} IPs (Zipf s=1.1)")
        print(
            f"  cold pass: {ours['cold_eps']:>10,.0f} events/s  ({ours['cold_s']:.2f} s, cache hit ratio "
            f"{ours['cold_hit_ratio']:.3f}, pending {ours['cold_pending']}, HTTP requests {ours['http_requests']})"
        )
        print(
            f"  warm pass: {ours['warm_eps']:>10,.0f} events/s  ({ours['warm_s']:.2f} s, cache hit ratio "
            f"{ours['warm_hit_ratio']:.3f})"
        )
        ref_stream = stream[: args.msticpy_events]
        ref = bench_msticpy(url, ref_stream)
        if ref is None:
            print("msticpy not installed: no comparison")
            return
        sub = asyncio.run(bench_secstream(url, ref_stream, args.batch))
        print(f"msticpy 3 OTX.lookup_ioc (sync, same server), first {ref['events']} events, IPs only:")
        print(f"  {ref['eps']:>10,.0f} events/s  ({ref['s']:.2f} s)")
        print(
            f"secstream on the same {sub['events']} events (cold, all IoCs, + blocklist): "
            f"{sub['cold_eps']:,.0f} events/s"
        )
        print(f"ratio secstream cold / msticpy: {sub['cold_eps'] / ref['eps']:.1f}x")
        print(f"ratio secstream warm (full stream) / msticpy: {ours['warm_eps'] / ref['eps']:.1f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
