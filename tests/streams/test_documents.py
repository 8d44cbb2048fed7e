"""Shared document helpers: stable ids and timestamps are exact and stable."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from schemas.documents import iso_timestamp, stable_id


def _reference_iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _reference_id(*parts: object) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(str(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()


class TestIsoTimestamp:
    @given(st.floats(min_value=-1e10, max_value=2e10, allow_nan=False))
    def test_equals_datetime_formatting(self, epoch: float) -> None:
        """The fast formatter gives exactly what datetime.fromtimestamp gives, at any instant."""
        assert iso_timestamp(epoch) == _reference_iso(epoch)

    def test_known_value(self) -> None:
        """An audit timestamp formats with milliseconds and a Z."""
        assert iso_timestamp(1551487424.869) == "2019-03-02T00:43:44.869Z"

    def test_rounding_up_to_the_next_second(self) -> None:
        """A fraction that rounds to a whole second carries into the seconds."""
        assert iso_timestamp(1551487424.9999996) == _reference_iso(1551487424.9999996)


class TestStableId:
    @given(st.lists(st.one_of(st.text(), st.integers(), st.floats(allow_nan=False)), max_size=6))
    def test_is_blake2b_of_the_parts(self, parts: list[object]) -> None:
        """The id is the BLAKE2b of each part's text followed by \\x1f (the documented scheme)."""
        assert stable_id(*parts) == _reference_id(*parts)

    def test_part_boundaries_matter(self) -> None:
        """("ab", "c") and ("a", "bc") get different ids."""
        assert stable_id("ab", "c") != stable_id("a", "bc")
