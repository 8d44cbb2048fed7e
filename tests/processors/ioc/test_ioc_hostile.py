"""Hostile input: random and adversarial text never errors and costs linear time."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.base64unpack import unpack_text
from processors.ioc.observables import analyze_text
from processors.iocextract import IoCExtract

ALPHABET = "abcfxAZ019./\\:@[](){}%=-_+ \n\t'\"hxpt"
TOKENS = [
    "http://",
    "hxxp[:]//",
    "[.]",
    "../",
    "//",
    "::",
    "ffff:",
    "1.2.3.",
    "a.com",
    "@",
    "=",
    "%2F",
    "\\\\",
    "C:\\",
    "deadbeef",
    "QUJD",
]

hostile_text = st.one_of(
    st.text(alphabet=ALPHABET, max_size=2000),
    st.lists(st.sampled_from(TOKENS), max_size=400).map("".join),
    st.text(max_size=500),
)

EXTRACTOR = IoCExtract()

# long runs that stress each scanner
ADVERSARIAL: dict[str, str] = {
    "dots": ".",
    "slashes": "/",
    "dotdot": "../",
    "hex": "0123456789abcdef",
    "equals": "=",
    "brackets": "[[(({{.}}))]]",
    "defang": "[.]a",
    "labels": "a.",
    "digits": "1.",
    "colons": "1:",
    "at": "a@",
    "urls": "http://",
    "unc": "\\\\a",
    "base64": "QUJDRA",
    "mixed": "x/1.2.3.4/:ffff::a@b.com%2F",
}


class TestNeverErrors:
    """Arbitrary text never raises."""

    @settings(max_examples=150)
    @given(hostile_text)
    def test_extract_and_unpack(self, text: str) -> None:
        """All types, paths included, and the unpacker run cleanly and return sorted lists."""
        result = EXTRACTOR.extract_text(text, include_paths=True)
        assert all(isinstance(value, str) for values in result.iocs.values() for value in values)
        unpacked = unpack_text(text)
        assert isinstance(unpacked.decoded_string, str)
        analysis = analyze_text(text)
        assert all(values == sorted(values) for values in analysis.iocs.values())

    @settings(max_examples=50)
    @given(hostile_text)
    def test_refang_off_maps_spans(self, text: str) -> None:
        """Keeping indicators as written never raises."""
        IoCExtract(refang=False).extract_text(text, include_paths=True)


def _per_byte(func: Callable[[str], object], text: str) -> float:
    """Best of five, in this process's CPU time: other processes on the machine do not count."""
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        func(text)
        best = min(best, time.process_time() - start)
    return best / len(text)


@pytest.mark.slow
class TestLinearTime:
    """Cost per byte does not grow with input size (ratio small vs 16x input), up to 1 MiB."""

    @pytest.mark.parametrize("name", sorted(ADVERSARIAL))
    def test_linear(self, name: str) -> None:
        """Per-byte time for 1 MiB is less than 4x the per-byte time for 64 KiB."""
        unit = ADVERSARIAL[name]
        small = (unit * (65536 // len(unit) + 1))[:65536]
        large = (unit * (1048576 // len(unit) + 1))[:1048576]

        def run(text: str) -> None:
            EXTRACTOR.extract_text(text, include_paths=True)
            analyze_text(text)

        run(small)  # warm-up
        ratio = _per_byte(run, large) / _per_byte(run, small)
        assert ratio < 4, f"{name}: per-byte cost ratio {ratio:.2f}"
