"""Hostile inputs, built-in provider loading from the environment, and a differential check with msticpy."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.enrich.enricher import Enricher, EnricherSettings
from processors.geoip import geo_distance
from processors.tilookup import TILookup
from processors.tiproviders import LocalBlocklist, SanitizedObservable, preprocess_observable
from processors.tiproviders.ti_provider_base import get_schema_and_host

IOC_TYPES = ["ipv4", "ipv6", "dns", "url", "md5_hash", "sha1_hash", "sha256_hash", "file_hash", "hostname"]
hostile_text = st.text(st.characters(codec="utf-8"), max_size=200) | st.from_regex(
    r"(https?|ftp|file)://[\[\]:@a-z0-9.%/?#-]{0,60}", fullmatch=True
)


class TestHostileInput:
    @given(text=hostile_text, ioc_type=st.sampled_from(IOC_TYPES))
    def test_preprocess__never_raises(self, text: str, ioc_type: str) -> None:
        """Any text of any declared type gives a SanitizedObservable; accepted values are non-empty."""
        result = preprocess_observable(text, ioc_type)
        assert isinstance(result, SanitizedObservable)
        assert (result.status == "ok") == (result.observable is not None)

    @given(text=hostile_text)
    def test_get_schema_and_host__never_raises(self, text: str) -> None:
        """URL splitting returns a triple for any text."""
        assert len(get_schema_and_host(text)) == 3

    @given(
        docs=st.lists(
            st.fixed_dictionaries(
                {"source": st.fixed_dictionaries({"ip": st.text(max_size=40)})},
                optional={
                    "secstream": st.fixed_dictionaries(
                        {"iocs": st.dictionaries(st.text(max_size=10), st.lists(st.text(max_size=30), max_size=3))}
                    )
                },
            ),
            max_size=10,
        )
    )
    async def test_enricher__never_drops(self, docs: list[dict[str, Any]]) -> None:
        """Whatever the documents hold, the enricher returns one document per input, in order."""
        enricher = Enricher(EnricherSettings(), providers=[LocalBlocklist(entries=())])
        out = await enricher.enrich(docs)
        assert len(out) == len(docs)
        assert [d["source"] for d in out] == [d["source"] for d in docs]
        await enricher.close()


class TestBuiltinProviders:
    def test_loaded_from_environment(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
        """Without instances, built-in providers with credentials in the environment are loaded."""
        for name in ("VIRUSTOTAL", "XFORCE", "OTX", "GREYNOISE"):
            monkeypatch.delenv(f"SECSTREAM_TI_{name}_AUTHKEY", raising=False)
            monkeypatch.delenv(f"SECSTREAM_TI_{name}_APIID", raising=False)
        monkeypatch.setenv("SECSTREAM_TI_OTX_AUTHKEY", "k")
        listfile = tmp_path / "l.txt"
        listfile.write_text("192.0.2.1\n")
        monkeypatch.setenv("SECSTREAM_TI_LOCALBLOCKLIST_PATH", str(listfile))
        ti = TILookup()
        assert set(ti.loaded_providers) == {"OTX", "GreyNoise", "LocalBlocklist"}
        with pytest.raises(ValueError):
            TILookup(providers=["NoSuchProvider"])


@pytest.mark.reference
class TestAgainstMsticpy:
    CASES = (
        ("185.92.220.35", "ipv4"),
        ("127.0.0.1", "ipv4"),
        ("10.0.0.1", "ipv4"),
        ("100.64.1.1", "ipv4"),
        ("224.0.0.1", "ipv4"),
        ("fe80::1", "ipv6"),
        ("http://10.0.0.1/foo", "url"),
        ("https://myhost/path", "url"),
        ("file://server.com/x", "url"),
        ("www.python.com", "dns"),
        ("0123456789abcdef0123456789abcdef", "md5_hash"),
    )

    def test_preprocess__same_answers(self) -> None:
        """For msticpy's own cases, the sanitiser gives the reference's observable and message."""
        ref = pytest.importorskip("msticpy.context.preprocess_observable")
        for observable, ioc_type in self.CASES:
            theirs = ref.preprocess_observable(observable, ioc_type)
            ours = preprocess_observable(observable, ioc_type)
            assert (ours.observable, ours.status) == (theirs.observable, theirs.status), observable

    def test_geo_distance__same(self) -> None:
        """The haversine distance equals msticpy's."""
        ref = pytest.importorskip("msticpy.context.geoip")
        for a, b in [((48.1372, 11.5756), (52.5186, 13.4083)), ((0.0, 0.0), (-33.9, 151.2))]:
            assert geo_distance(a, b) == pytest.approx(ref.geo_distance(a, b))
