"""Development tooling, not the runtime: a local Kafka broker (``broker``) and worker deployments (``deployment``)
for the tests, the benchmarks and ``secstream dev-kafka``."""

from __future__ import annotations

__all__: list[str] = []
