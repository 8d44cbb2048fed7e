"""Prometheus metrics and the health endpoint of the worker (served by Faust's web server).

``/metrics`` exposes the stage graph's counters (read from :class:`~streams.graph.PipelineStats` at
scrape time, so the graph stays free of metric code) and the worker's own: per-stage latency, held
acks, consumer lag. ``/healthz`` answers 200 while the worker runs and has joined its group, else 503.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from streams.graph import Outputs, PipelineStats
from streams.worker.watermark import OrderCounters

__all__ = ["WorkerMetrics", "register_web"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StatsCollector:
    """Exports the graph's cumulative counters at scrape time."""

    def __init__(self, stats: Callable[[], PipelineStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        """Yield one metric family per graph counter."""

        def family(name: str, doc: str, label: str, counts: Any) -> CounterMetricFamily:
            metric = CounterMetricFamily(f"secstream_{name}", doc, labels=[label])
            for key, value in sorted(counts.items()):
                metric.add_metric([str(key)], float(value))
            return metric

        stats = self.stats()
        yield family("lines_in", "Raw lines read, per input stream.", "stream", stats.lines_in)
        yield family("events_out", "Events written, per module:action.", "type", stats.events_out)
        yield family("detections", "Detections written, per rule.", "rule", stats.detections)
        yield family("bad_input", "Lines sent to the dead letters, per stream:reason.", "reason", stats.bad_input)
        yield family(
            "audit_records", "Partial, late and duplicate audit records, overflow flushes.", "kind", stats.audit
        )
        # The process trackers' evictions and the coalescer's overflow flushes (both bound a host's state).
        evictions = {k: v for k, v in stats.proctree.items() if str(k).startswith("evicted_")}
        evictions["coalescer_overflow"] = stats.audit.get("overflow", 0)
        yield family("evictions", "State evicted to stay within bounds.", "kind", evictions)
        lookups = CounterMetricFamily(
            "secstream_ti_lookups", "Threat-intel lookups per provider and status.", labels=["provider", "status"]
        )
        for key, value in sorted(stats.enrichment.items()):
            provider, _, status = str(key).partition(":")
            lookups.add_metric([provider, status], float(value))
        yield lookups
        cache = CounterMetricFamily("secstream_ti_cache", "TI cache hits and misses.", labels=["result"])
        hits = sum(v for k, v in stats.enrichment.items() if str(k).endswith(":cached"))
        misses = sum(v for k, v in stats.enrichment.items() if not str(k).endswith(":cached"))
        cache.add_metric(["hit"], float(hits))
        cache.add_metric(["miss"], float(misses))
        yield cache
        limited = sum(v for k, v in stats.enrichment.items() if "rate" in str(k))
        yield CounterMetricFamily(
            "secstream_ti_rate_limited", "Lookups deferred by a rate limit or quota.", value=float(limited)
        )


class _OrderCollector:
    """Exports the event-time order's counters and, per internal audit partition, its held lines and lag."""

    def __init__(self, counters: OrderCounters, gauges: Callable[[], Iterable[tuple[Any, int, float]]]) -> None:
        self.counters = counters
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        """Yield the order's metric families."""
        lines = CounterMetricFamily(
            "secstream_event_order_lines",
            "Audit lines dropped as re-routed copies, or released before every raw partition passed them.",
            labels=["reason"],
        )
        lines.add_metric(["rerouted"], float(self.counters.rerouted))
        lines.add_metric(["forced_wait"], float(self.counters.forced_wait))
        lines.add_metric(["forced_memory"], float(self.counters.forced_memory))
        yield lines
        held = GaugeMetricFamily(
            "secstream_event_order_held", "Audit lines held for event-time order.", labels=["topic", "partition"]
        )
        lag = GaugeMetricFamily(
            "secstream_watermark_lag_seconds",
            "Event time between a host's newest line and its watermark, the largest over a partition's hosts.",
            labels=["topic", "partition"],
        )
        for tp, count, behind in self.gauges():
            held.add_metric([tp.topic, str(tp.partition)], float(count))
            lag.add_metric([tp.topic, str(tp.partition)], behind)
        yield held
        yield lag


class WorkerMetrics:
    """The worker's metrics in their own registry.

    Args:
        stats: returns the stage graph's counters (read at scrape time).
    """

    def __init__(self, stats: Callable[[], PipelineStats]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(stats))
        self.stage_seconds = Histogram(
            "secstream_stage_seconds",
            "Time spent per stage and batch.",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.bad_input = Counter(
            "secstream_undecodable", "Raw values that could not be decoded.", ["reason"], registry=self.registry
        )
        self.records_out = Counter(
            "secstream_records_out", "Documents written per output topic.", ["output"], registry=self.registry
        )
        self.held = Gauge(
            "secstream_held_acks", "Source records held until their event is out.", registry=self.registry
        )
        self.hold_expired = Counter(
            "secstream_hold_expired", "Held records released by timeout, not by their event.", registry=self.registry
        )
        self.lag = Gauge(
            "secstream_consumer_lag",
            "High-water mark minus next offset, per partition.",
            ["topic", "partition"],
            registry=self.registry,
        )

    def watch_order(self, counters: OrderCounters, gauges: Callable[[], Iterable[tuple[Any, int, float]]]) -> None:
        """Export the event-time order's counters and per-partition gauges (read at scrape time)."""
        self.registry.register(_OrderCollector(counters, gauges))

    def count_outputs(self, outputs: Outputs) -> None:
        """Count one batch's documents per output."""
        for name, docs in (
            ("events", outputs.events),
            ("detections", outputs.detections),
            ("deadletter", outputs.deadletters),
        ):
            if docs:
                self.records_out.labels(output=name).inc(len(docs))

    def observe_lag(self, tp: Any, last_offset: int, highwater: int | None) -> None:
        """Record the consumer lag of a partition after a batch."""
        if highwater is not None:
            self.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, highwater - last_offset - 1))

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


def register_web(app: Any, metrics: WorkerMetrics, healthy: Any) -> None:
    """Add ``/metrics`` and ``/healthz`` to the Faust app's web server.

    Args:
        app: the Faust app.
        metrics: the worker metrics.
        healthy: a callable returning (ok, details); ``details`` may carry its own ``status`` (else
            ``ok``, or ``starting`` when not ok).
    """

    async def _metrics(web: Any, request: Any) -> Any:
        del request
        return web.bytes(metrics.render(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def _healthz(web: Any, request: Any) -> Any:
        del request
        ok, details = healthy()
        return web.json({"status": "ok" if ok else "starting", **details}, status=200 if ok else 503)

    app.page("/metrics")(_metrics)
    app.page("/healthz")(_healthz)
