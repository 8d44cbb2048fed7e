"""Shared fixtures: msticpy test data in ../shared (skipped where absent), hypothesis profiles, a Kafka broker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _find_shared() -> Path | None:
    override = os.environ.get("SECSTREAM_SHARED")
    candidates = [Path(override)] if override else []
    candidates += [REPO.parent / "shared", REPO.parent.parent / "shared"]
    for candidate in candidates:
        if (candidate / "testdata" / "msticpy").is_dir():
            return candidate
    return None


SHARED_ABSENT = (
    "needs other projects' data (msticpy test data, seed docs, peer logs) from ../shared beside the checkout "
    "or $SECSTREAM_SHARED, which is absent; our own fixtures cover the same stages"
)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared/ directory beside the checkout (seed docs and msticpy's test data).

    It holds other projects' data, which is never committed: where it is absent (a fresh clone) the tests
    that read it skip with one reason, and small fixtures of our own cover what they guard.
    """
    found = _find_shared()
    if found is None:
        pytest.skip(SHARED_ABSENT)
    return found


@pytest.fixture(scope="session")
def msticpy_testdata(shared_dir: Path) -> Path:
    """msticpy's own test data directory (MIT), read in place, never copied."""
    return shared_dir / "testdata" / "msticpy" / "tests" / "testdata"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Apache Kafka broker: ``KAFKA_BOOTSTRAP`` if set, else a local one started for the session."""
    given = os.environ.get("KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    from streams.dev.broker import LocalKafka, default_kafka_home

    broker = LocalKafka(home=default_kafka_home(), state_dir=tmp_path_factory.mktemp("kafka"), port=0)
    bootstrap = broker.start()
    try:
        yield bootstrap
    finally:
        broker.stop()
