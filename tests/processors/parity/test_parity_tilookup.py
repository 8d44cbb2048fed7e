"""The rest of msticpy's TI surface: the results browser, reloading, pivots and the http_base module."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from processors.entities import IpAddress
from processors.tilookup import TILookup
from processors.tiproviders import LocalBlocklist
from processors.tiproviders.ti_provider_base import TIPivotProvider

RESULTS = pl.DataFrame(
    {
        "Ioc": ["203.0.113.66", "203.0.113.66", "198.51.100.7"],
        "IocType": ["ipv4", "ipv4", "ipv4"],
        "Provider": ["OTX", "VirusTotal", "OTX"],
        "Severity": [2, 1, 0],
        "Result": [True, True, False],
        "Details": ['{"pulse_count": 3}', "{}", "{}"],
    }
)


class TestBrowse:
    def test_default_shows_warning_and_high(self) -> None:
        """browse keeps warning and high results by default, grouped by observable."""
        browser = TILookup.browse(RESULTS)
        assert len(browser) == 2
        assert browser.observables == ["203.0.113.66"]
        assert browser.details("203.0.113.66")["Provider"].to_list() == ["OTX", "VirusTotal"]

    def test_severities_can_be_widened(self) -> None:
        """Passing all severities shows every result."""
        assert len(TILookup.browse_results(RESULTS, severities=["information", "warning", "high"])) == 3

    def test_renders_in_notebooks_and_terminals(self) -> None:
        """The browser renders as an HTML table and as text with the observables in it."""
        browser = TILookup.browse(RESULTS)
        assert "<table>" in browser._repr_html_() and "203.0.113.66" in browser._repr_html_()
        assert "203.0.113.66" in str(browser) and "198.51.100.7" not in str(browser)

    def test_accepts_pandas(self) -> None:
        """A pandas frame of results is accepted."""
        assert len(TILookup.browse(RESULTS.to_pandas())) == 2


class TestReload:
    def test_reload_provider_settings_reports_credentials(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """reload_provider_settings re-reads which providers have credentials in the environment."""
        monkeypatch.delenv("SECSTREAM_TI_OTX_AUTHKEY", raising=False)
        assert TILookup.reload_provider_settings()["OTX"] is False
        monkeypatch.setenv("SECSTREAM_TI_OTX_AUTHKEY", "k")
        assert TILookup.reload_provider_settings()["OTX"] is True

    def test_reload_providers_picks_up_new_credentials(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A provider whose key appears after construction is loaded by reload_providers."""
        monkeypatch.delenv("SECSTREAM_TI_OTX_AUTHKEY", raising=False)
        lookup = TILookup(providers=["OTX"])
        assert "OTX" not in lookup.loaded_providers
        monkeypatch.setenv("SECSTREAM_TI_OTX_AUTHKEY", "k")
        lookup.reload_providers()
        assert "OTX" in lookup.loaded_providers

    def test_reload_keeps_explicit_providers(self, tmp_path: Path) -> None:
        """Providers passed as instances are kept by reload_providers."""
        blocklist = tmp_path / "b.txt"
        blocklist.write_text("203.0.113.66\n")
        lookup = TILookup(primary_providers=[LocalBlocklist(blocklist)])
        lookup.reload_providers()
        assert list(lookup.loaded_providers) == ["LocalBlocklist"]


class TestPivots:
    def test_register_pivots_attaches_lookups_to_entities(self, tmp_path: Path) -> None:
        """After register_pivots, an IpAddress entity can look itself up in the provider."""
        blocklist = tmp_path / "b.txt"
        blocklist.write_text("203.0.113.66\n")
        provider = LocalBlocklist(blocklist)
        assert isinstance(provider, TIPivotProvider)
        provider.register_pivots()
        try:
            assert IpAddress(Address="203.0.113.66").ti_localblocklist().result is True  # type: ignore[attr-defined]
            assert IpAddress(Address="198.51.100.1").ti_localblocklist().result is False  # type: ignore[attr-defined]
        finally:
            delattr(IpAddress, "ti_localblocklist")


def test_http_base_is_msticpy_15_module_name() -> None:
    """processors.tiproviders.http_base exposes the HTTP provider classes under msticpy 1.5's module name."""
    from processors.tiproviders import http_base, http_provider

    assert http_base.HttpProvider is http_provider.HttpProvider
    assert http_base.IoCLookupParams is http_provider.IoCLookupParams


async def test_sync_api_works_inside_a_running_loop(tmp_path: Path) -> None:
    """The synchronous lookup works where a loop already runs (a notebook), as msticpy users expect."""
    blocklist = tmp_path / "b.txt"
    blocklist.write_text("203.0.113.66\n")
    lookup = TILookup(primary_providers=[LocalBlocklist(blocklist)])
    found, results = lookup.lookup_ioc("203.0.113.66")
    assert found is True
    assert results[0][1].result is True
