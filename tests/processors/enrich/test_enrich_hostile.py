"""Enrichment clients against a hostile or broken provider: real local servers that behave the bad way.

Every HTTP provider that can meet a misbehaviour is tested with it: redirects to another origin, huge
and endless answers, observables shaped to steer the request path, answers echoing the credentials and
429s with long ``Retry-After``; and the GeoLite2 update with oversized, corrupt or redirected downloads.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import structlog.testing
import yarl
from aiohttp import web
from hypothesis import example, given, settings
from hypothesis import strategies as st

from processors.enrich.enricher import Enricher, EnricherSettings
from processors.enrich.geoip import GeoLiteReader
from processors.enrich.http import HttpSettings
from processors.enrich.providers import OTX, GreyNoise, HttpProvider, TILookupStatus, VirusTotal, XForce
from processors.enrich.ratelimit import RateLimits
from processors.geoip import IPStackLookup
from processors.vtlookup import VTLookup
from processors.vtlookupv3 import VTLookupV3

KEY = "sekret-key-1234"
API_ID = "sekret-id-5678"
OPEN = RateLimits(per_minute=60_000, burst=1000, max_concurrency=16)
FAST = HttpSettings(backoff_base_s=0.001, backoff_max_s=0.01, max_retries=1)
PROVIDERS = ("OTX", "VirusTotal", "GreyNoise", "XForce")
BAD_IP = "185.92.220.35"


def provider(name: str, url: str, *, limits: RateLimits = OPEN, http: HttpSettings = FAST) -> HttpProvider:
    """One HTTP provider pointed at a local server, with known credentials."""
    kinds: dict[str, Callable[..., HttpProvider]] = {
        "OTX": OTX,
        "VirusTotal": VirusTotal,
        "GreyNoise": GreyNoise,
        "XForce": XForce,
    }
    return kinds[name](
        AuthKey=KEY, ApiID=API_ID, base_url=url, limits=limits, http_settings=http, rate_limit_wait_s=0.0
    )


def credentials_seen(headers: dict[str, str]) -> list[str]:
    """The request headers that carry one of the test credentials."""
    return [name for name, value in headers.items() if KEY in value or API_ID in value or value.startswith("Basic")]


def answer_for_all_providers(echo: str) -> dict[str, Any]:
    """One body every provider parses as a malicious match, with ``echo`` in the fields it copies."""
    return {
        "pulse_info": {"pulses": [{"name": echo, "tags": [echo], "references": [echo]}] * 2},
        "data": {
            "id": echo,
            "type": "ip_address",
            "attributes": {"last_analysis_stats": {"malicious": 5}, "as_owner": echo},
        },
        "riot": False,
        "classification": "malicious",
        "name": echo,
        "message": echo,
        "score": 9,
        "reason": echo,
        "reasonDescription": echo,
    }


class TestRedirects:
    @pytest.mark.parametrize("name", PROVIDERS)
    async def test_cross_origin_redirect__credentials_never_sent(
        self, name: str, handler_server_factory: Callable[..., Any]
    ) -> None:
        """A 302 to another host:port is not followed: the other origin receives nothing, the lookup fails."""

        async def elsewhere(request: web.Request) -> web.StreamResponse:
            return web.json_response(answer_for_all_providers("stolen"))

        other = handler_server_factory(elsewhere)

        async def redirect(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(other.url + request.path_qs)

        origin = handler_server_factory(redirect)
        prov = provider(name, origin.url)
        results = [await prov.lookup_ioc_async(BAD_IP, "ipv4") for _ in range(3)]
        await prov.close()
        assert other.requests == [], "the other origin was never contacted"
        assert all(r.status == TILookupStatus.query_failed.value for r in results)
        assert all("another origin" in r.details["message"] for r in results)
        assert prov.stats()["redirects_refused"] == 3
        assert credentials_seen(origin.requests[0].headers), "the configured origin did get the credentials"

    @pytest.mark.parametrize("name", PROVIDERS)
    async def test_same_origin_redirect__followed(self, name: str, handler_server_factory: Callable[..., Any]) -> None:
        """A redirect within the configured origin is followed, credentials included."""

        async def handler(request: web.Request) -> web.StreamResponse:
            if not request.path.startswith("/moved"):
                raise web.HTTPMovedPermanently("/moved" + request.path)
            return web.json_response(answer_for_all_providers("fine"))

        server = handler_server_factory(handler)
        prov = provider(name, server.url)
        result = await prov.lookup_ioc_async(BAD_IP, "ipv4")
        await prov.close()
        assert result.status == TILookupStatus.ok.value and result.result
        assert [r.path.startswith("/moved") for r in server.requests] == [False, True]
        assert credentials_seen(server.requests[1].headers)


class TestAnswerSize:
    @pytest.mark.parametrize("name", PROVIDERS)
    async def test_announced_huge_body__refused_and_counted(
        self, name: str, handler_server_factory: Callable[..., Any]
    ) -> None:
        """An answer larger than max_body_bytes fails the lookup as too_large and counts against the breaker."""

        async def huge(request: web.Request) -> web.StreamResponse:
            return web.Response(body=b" " * 300_000, content_type="application/json")

        server = handler_server_factory(huge)
        prov = provider(name, server.url, http=HttpSettings(max_body_bytes=65_536, max_retries=0))
        result = await prov.lookup_ioc_async(BAD_IP, "ipv4")
        await prov.close()
        assert result.status == TILookupStatus.query_failed.value
        assert result.details["error"] == "too_large"
        assert prov.http.breaker.consecutive_failures == 1
        assert prov.stats()["too_large"] == 1

    @pytest.mark.parametrize("name", PROVIDERS)
    async def test_endless_chunked_answer__cut_at_the_cap(
        self, name: str, handler_server_factory: Callable[..., Any]
    ) -> None:
        """A chunked answer that never ends is read only up to the cap, then abandoned."""
        sent: list[int] = []

        async def endless(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            try:
                for _ in range(16_384):  # 1 GiB at most: the client gives up long before
                    await response.write(b"[" * 65_536)
                    sent.append(1)
            except (ConnectionResetError, RuntimeError):
                pass
            return response

        server = handler_server_factory(endless)
        prov = provider(name, server.url, http=HttpSettings(max_body_bytes=262_144, max_retries=0, timeout_s=20))
        result = await prov.lookup_ioc_async(BAD_IP, "ipv4")
        await prov.close()
        assert result.details["error"] == "too_large"
        assert prov.http.breaker.consecutive_failures == 1
        assert len(sent) < 16_384

    async def test_huge_field__capped_in_events(self, handler_server_factory: Callable[..., Any]) -> None:
        """A large field in an otherwise normal answer is cut before it is copied into the event."""

        async def fat(request: web.Request) -> web.StreamResponse:
            return web.json_response(answer_for_all_providers("A" * 50_000))

        server = handler_server_factory(fat)
        enricher = Enricher(EnricherSettings(), providers=[provider("OTX", server.url)])
        out = await enricher.enrich([{"source": {"ip": BAD_IP}} for _ in range(50)])
        await enricher.close()
        assert all(len(orjson.dumps(doc)) < 8_192 for doc in out)
        details = out[0]["secstream"]["enrichment"]["matches"][0]["details"]
        assert len(details["names"][0]) == 513, "strings are cut at max_detail_string"
        assert enricher.stats["details_truncated"] == 1, "counted once per answer, not per event"


class TestRequestPaths:
    HOSTILE = (
        ("url", "http://evil.example.com/../../../../api/v1/pulses/subscribed/x"),
        ("url", "http://evil.example.com/a/../../../whois/8.8.8.8"),
        ("url", "http://evil.example.com/%2e%2e/%2e%2e/ipr/1.2.3.4"),
        ("url", "http://evil.example.com/a%2F..%2F..%2Fx/?q=../../y#/../z"),
        ("dns", "evil.example.com/../../whois/8.8.8.8"),
        ("ipv4", "185.92.220.35/../../whois/8.8.8.8"),
        ("md5_hash", "d41d8cd98f00b204e9800998ecf8427e/../../x"),
        ("sha256_hash", "../" * 20 + "x"),
    )

    @pytest.mark.parametrize("name", PROVIDERS)
    async def test_hostile_observables__stay_in_their_path_segment(
        self, name: str, handler_server_factory: Callable[..., Any]
    ) -> None:
        """Every observable sent is one encoded path segment of its own query's endpoint: no '..' escapes."""

        async def answer(request: web.Request) -> web.StreamResponse:
            return web.json_response(answer_for_all_providers("x"))

        server = handler_server_factory(answer)
        prov = provider(name, server.url)
        expected: list[tuple[str, str]] = []
        for ioc_type, observable in self.HOSTILE:
            sent_before = len(server.raw_paths)
            result = await prov.lookup_ioc_async(observable, ioc_type)
            if len(server.raw_paths) > sent_before:
                template = prov.ioc_query_defs[ioc_type].path
                prefix, suffix = template.split("{observable}")
                expected.append((prefix, suffix))
                assert result.status == TILookupStatus.ok.value
        await prov.close()
        assert len(server.raw_paths) == len(expected)
        for raw_path, (prefix, suffix) in zip(server.raw_paths, expected, strict=True):
            assert raw_path.startswith(prefix) and raw_path.endswith(suffix), raw_path
            segment = raw_path[len(prefix) : len(raw_path) - len(suffix)]
            assert "/" not in segment and segment not in ("..", "."), raw_path
        if name in ("OTX", "VirusTotal", "XForce"):
            assert expected, "URL observables were looked up"


class TestSecretsInAnswers:
    @pytest.mark.parametrize("name", PROVIDERS)
    async def test_echoed_credentials__redacted(self, name: str, handler_server_factory: Callable[..., Any]) -> None:
        """An answer echoing the request's credentials has them redacted in results and in events."""

        async def echo(request: web.Request) -> web.StreamResponse:
            return web.json_response(answer_for_all_providers(" ".join(request.headers.values())))

        server = handler_server_factory(echo)
        prov = provider(name, server.url)
        enricher = Enricher(EnricherSettings(), providers=[prov])
        out = await enricher.enrich([{"source": {"ip": BAD_IP}}])
        result = prov.cached_result(BAD_IP, "ipv4")
        await enricher.close()
        assert credentials_seen(server.requests[0].headers), "the server saw the credentials"
        assert result is not None and result.result
        text = repr(result.raw_result) + repr(result.details) + orjson.dumps(out).decode()
        assert KEY not in text and API_ID not in text
        assert "[REDACTED]" in text
        assert out[0]["threat"]["enrichments"], "the answer was still used"


class TestVTLookupFacades:
    def test_vtlookup_v2__echoed_key_redacted(self, handler_server_factory: Callable[..., Any]) -> None:
        """VTLookup (API v2, key in the query string) redacts an answer that echoes the key."""

        async def echo(request: web.Request) -> web.StreamResponse:
            key = request.query.get("apikey", "")
            return web.json_response(
                {"response_code": 1, "resource": key, "permalink": key, "positives": 2, "verbose_msg": key}
            )

        server = handler_server_factory(echo)
        vt = VTLookup(KEY, base_url=server.url, rate_limits=None, http_settings=FAST)
        row = vt.lookup_ioc("d41d8cd98f00b204e9800998ecf8427e", "md5_hash")
        assert server.requests[0].query["apikey"] == KEY
        text = str(row)
        assert KEY not in text and "[REDACTED]" in text

    def test_vtlookup_v3__echoed_key_redacted(self, handler_server_factory: Callable[..., Any]) -> None:
        """VTLookupV3 (key in x-apikey) redacts an answer that echoes the key."""

        async def echo(request: web.Request) -> web.StreamResponse:
            key = request.headers.get("x-apikey", "")
            attributes = {"meaningful_name": key, "last_analysis_stats": {"malicious": 3}, "tags": [key]}
            return web.json_response({"data": {"id": "abc", "type": "file", "attributes": attributes}})

        server = handler_server_factory(echo)
        vt = VTLookupV3(KEY, base_url=server.url, rate_limits=None, http_settings=FAST)
        frame = vt.get_object("abc", "file")
        assert server.requests[0].headers["x-apikey"] == KEY
        text = str(frame.to_dicts())
        assert KEY not in text and "[REDACTED]" in text


class TestRetryAfter:
    @pytest.mark.parametrize("name", PROVIDERS)
    async def test_429_with_long_retry_after__pauses_the_provider(
        self, name: str, handler_server_factory: Callable[..., Any]
    ) -> None:
        """After one 429 with Retry-After, the rest of the batch is deferred without a request (bounded pause)."""

        async def limited(request: web.Request) -> web.StreamResponse:
            return web.json_response({}, status=429, headers={"Retry-After": "3600"})

        server = handler_server_factory(limited)
        prov = provider(
            name,
            server.url,
            limits=RateLimits(per_minute=60_000, burst=1000, max_concurrency=1),
            http=HttpSettings(max_retry_after_s=5.0),
        )
        enricher = Enricher(EnricherSettings(max_wait_s=5.0), providers=[prov])
        ips = [f"185.92.220.{i}" for i in range(10, 20)]
        out = await enricher.enrich([{"source": {"ip": ip}} for ip in ips])
        await enricher.close()
        assert len(server.requests) == 1
        assert prov.stats()["deferred"] == 9
        assert 0 < prov.http.paused_for_s <= 5.0
        assert enricher.outcomes[f"{prov.name}:rate_limited"] == 10
        assert enricher.stats["clients"][prov.name]["deferred"] == 9
        assert all(doc["secstream"]["enrichment"]["incomplete"][0]["status"] == "rate_limited" for doc in out)

    async def test_pause_within_the_allowed_wait__waited_out(self, handler_server_factory: Callable[..., Any]) -> None:
        """A caller that may wait (the batch API) waits out a short pause and then gets its answer."""
        calls: list[int] = []

        async def once_limited(request: web.Request) -> web.StreamResponse:
            calls.append(1)
            if len(calls) == 1:
                return web.json_response({}, status=429, headers={"Retry-After": "0.2"})
            return web.json_response(answer_for_all_providers("x"))

        server = handler_server_factory(once_limited)
        prov = provider("OTX", server.url)
        first, second = await asyncio.gather(
            prov.lookup_ioc_async(BAD_IP, "ipv4", rate_limit_wait_s=5.0),
            prov.lookup_ioc_async("213.159.214.86", "ipv4", rate_limit_wait_s=5.0),
        )
        await prov.close()
        assert first.result and second.result
        assert prov.stats()["deferred"] == 0
        assert len(server.requests) == 3


def _archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class TestGeoIPUpdate:
    def _serve(self, factory: Callable[..., Any], payload: bytes) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(body=payload)

        return factory(handler)

    def _update(self, folder: Path, url: str, **kw: Any) -> GeoLiteReader:
        return GeoLiteReader(
            api_key=KEY, account_id="1234", db_folder=str(folder), force_update=True, download_url=url, **kw
        )

    @pytest.mark.parametrize(
        "member",
        [b"not a database at all", b"\xab\xcd\xefMaxMind.com" + b"\x00" * 64],
        ids=["garbage", "bad-metadata"],
    )
    def test_corrupt_database__installed_one_kept(
        self, member: bytes, geolite_folder: Path, handler_server_factory: Callable[..., Any]
    ) -> None:
        """A download whose .mmdb does not open is not installed; the working database stays."""
        before = (geolite_folder / "GeoLite2-City.mmdb").read_bytes()
        server = self._serve(handler_server_factory, _archive({"x/GeoLite2-City.mmdb": member}))
        reader = self._update(geolite_folder, server.url + "/{edition}")
        assert (geolite_folder / "GeoLite2-City.mmdb").read_bytes() == before
        assert reader.ecs_geo("81.2.69.160")[0] is not None
        assert sorted(p.name for p in geolite_folder.iterdir()) == ["GeoLite2-ASN.mmdb", "GeoLite2-City.mmdb"]
        reader.close()

    def test_wrong_database_type__rejected(
        self, tmp_path: Path, geolite_folder: Path, kit: SimpleNamespace, handler_server_factory: Callable[..., Any]
    ) -> None:
        """A valid MMDB of another edition under the City name is not installed."""
        asn = kit.write_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", {"1.0.0.0/24": {"x": 1}}).read_bytes()
        before = (geolite_folder / "GeoLite2-City.mmdb").read_bytes()
        server = self._serve(handler_server_factory, _archive({"GeoLite2-City.mmdb": asn}))
        self._update(geolite_folder, server.url + "/{edition}").close()
        assert (geolite_folder / "GeoLite2-City.mmdb").read_bytes() == before

    def test_oversized_download__refused(
        self, geolite_folder: Path, handler_server_factory: Callable[..., Any]
    ) -> None:
        """An archive larger than max_download_bytes is abandoned; nothing is left behind."""
        server = self._serve(handler_server_factory, b"\x1f\x8b" + b"\x00" * 500_000)
        self._update(geolite_folder, server.url + "/{edition}", max_download_bytes=100_000).close()
        assert sorted(p.name for p in geolite_folder.iterdir()) == ["GeoLite2-ASN.mmdb", "GeoLite2-City.mmdb"]

    def test_tar_bomb__member_capped(self, geolite_folder: Path, handler_server_factory: Callable[..., Any]) -> None:
        """A small archive holding a huge .mmdb is refused before it is written out."""
        bomb = _archive({"GeoLite2-City.mmdb": b"\x00" * 20_000_000})
        assert len(bomb) < 100_000
        before = (geolite_folder / "GeoLite2-City.mmdb").read_bytes()
        server = self._serve(handler_server_factory, bomb)
        self._update(geolite_folder, server.url + "/{edition}", max_database_bytes=5_000_000).close()
        assert (geolite_folder / "GeoLite2-City.mmdb").read_bytes() == before
        assert sorted(p.name for p in geolite_folder.iterdir()) == ["GeoLite2-ASN.mmdb", "GeoLite2-City.mmdb"]

    def test_huge_member_before_the_database__not_decompressed(
        self, geolite_folder: Path, handler_server_factory: Callable[..., Any]
    ) -> None:
        """A huge member ahead of the .mmdb stops the update at its header, before it is decompressed."""
        bomb = _archive({"README.txt": b"\x00" * 30_000_000, "GeoLite2-City.mmdb": b"x"})
        before = (geolite_folder / "GeoLite2-City.mmdb").read_bytes()
        server = self._serve(handler_server_factory, bomb)
        with structlog.testing.capture_logs() as logs:
            self._update(geolite_folder, server.url + "/{edition}", max_database_bytes=1_000_000).close()
        assert (geolite_folder / "GeoLite2-City.mmdb").read_bytes() == before
        assert any("README.txt in the download is 30000000 bytes" in str(e.get("error")) for e in logs)

    def test_no_database_and_corrupt_download__clear_error(
        self, tmp_path: Path, handler_server_factory: Callable[..., Any]
    ) -> None:
        """Without an installed database, a corrupt download is a clear GeoIPDatabaseException."""
        from processors.enrich.geoip import GeoIPDatabaseException

        server = self._serve(handler_server_factory, _archive({"GeoLite2-City.mmdb": b"junk"}))
        with pytest.raises(GeoIPDatabaseException, match="download failed"):
            self._update(tmp_path / "db", server.url + "/{edition}")

    def test_redirect_to_object_store__followed_without_credentials(
        self, tmp_path: Path, kit: SimpleNamespace, handler_server_factory: Callable[..., Any]
    ) -> None:
        """MaxMind redirects downloads to another host: it is followed, and that host sees no credentials."""
        mmdb = kit.write_mmdb(tmp_path / "src.mmdb", "GeoLite2-City", kit.CITY_RECORDS).read_bytes()
        store = self._serve(handler_server_factory, _archive({"GeoLite2-City_1/GeoLite2-City.mmdb": mmdb}))

        async def maxmind(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(store.url + "/bucket" + request.path + "?sig=abc")

        origin = handler_server_factory(maxmind)
        reader = self._update(tmp_path / "db", origin.url + "/{edition}?license_key=" + KEY)
        assert reader.ecs_geo("81.2.69.160")[0] is not None
        assert origin.requests[0].headers["Authorization"].startswith("Basic ")
        assert store.requests and all(not credentials_seen(r.headers) for r in store.requests)
        assert all(KEY not in str(r.query) for r in store.requests)
        reader.close()


class TestIPStack:
    def test_cross_origin_redirect__key_not_forwarded(self, handler_server_factory: Callable[..., Any]) -> None:
        """IPStack's key (a query parameter) never reaches another origin; the lookup fails clearly."""

        async def elsewhere(request: web.Request) -> web.StreamResponse:
            return web.json_response({"ip": "81.2.69.160"})

        other = handler_server_factory(elsewhere)

        async def redirect(request: web.Request) -> web.StreamResponse:
            raise web.HTTPTemporaryRedirect(other.url + request.path_qs)

        origin = handler_server_factory(redirect)
        with pytest.raises(ConnectionError, match="another origin"):
            IPStackLookup(api_key=KEY, base_url=origin.url).lookup_ip(ip_address="81.2.69.160")
        assert other.requests == []
        assert origin.requests[0].query["access_key"] == KEY

    def test_huge_answer__refused(self, handler_server_factory: Callable[..., Any]) -> None:
        """An IPStack answer larger than the cap fails instead of filling memory."""

        async def huge(request: web.Request) -> web.StreamResponse:
            return web.Response(body=b"[" + b" " * 2_000_000 + b"]", content_type="application/json")

        server = handler_server_factory(huge)
        with pytest.raises(ConnectionError, match="larger than"):
            IPStackLookup(api_key=KEY, base_url=server.url).lookup_ip(ip_address="81.2.69.160")


class TestRequestPathProperty:
    @settings(max_examples=200, deadline=None)
    @given(observable=st.text(max_size=80), name=st.sampled_from(PROVIDERS))
    @example(observable=".", name="OTX")
    @example(observable="..", name="OTX")
    def test_any_observable__one_segment_of_its_endpoint(self, observable: str, name: str) -> None:
        """Whatever text reaches a provider's request builder, it stays one segment of its own endpoint."""
        prov = provider(name, "https://ti.example:8443/base")
        for ioc_type, params in prov.ioc_query_defs.items():
            key, _, subtype = ioc_type.partition("-")
            request = prov._substitute_parms(observable, key, subtype or None)
            prefix, suffix = params.path.split("{observable}")
            raw_path = yarl.URL(request.url, encoded=True).raw_path
            assert raw_path.startswith("/base" + prefix) and raw_path.endswith(suffix)
            segment = raw_path[len("/base" + prefix) : len(raw_path) - len(suffix)]
            assert "/" not in segment and "?" not in segment and "#" not in segment
            assert segment not in ("..", ".")
