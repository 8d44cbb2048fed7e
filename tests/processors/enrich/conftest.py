"""Fixtures for the enrichment tests: real local aiohttp servers (127.0.0.1, ephemeral ports) and MMDBs.

The TI server answers in each provider's documented format (msticpy's mock bodies for OTX, X-Force,
GreyNoise and VirusTotal; the VirusTotal report fixtures from msticpy's test data), counts the requests
it receives, and can be told to answer an observable slowly, with 404, 429 + ``Retry-After`` or 500.
The server runs in its own thread and event loop, so both the async stream stage and the synchronous
batch API (which runs its own loop) can use it.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp import web

BENIGN_IPS = ("40.76.4.15", "40.112.72.205", "40.113.200.201")
BAD_IPS = (
    "185.92.220.35", "213.159.214.86", "77.222.54.202", "91.219.236.222", "193.42.110.18",
    "109.200.24.161", "188.166.168.250", "185.38.142.84", "157.230.107.98", "185.200.116.208",
    "45.79.116.134", "68.183.43.47", "185.158.113.51", "190.214.28.69", "178.128.194.51",
    "138.68.64.204", "134.209.110.120",
)  # fmt: skip

OTX_BODY = {
    "response": "Found stuff",
    "pulse_info": {"pulses": [{"name": ["somename"], "tags": ["bad", "good", "ugly"], "references": ["url1", "url2"]}]},
}
XFORCE_BODY = {
    "score": 1,
    "cats": ["one", "two"],
    "reason": "no reason really",
    "reasonDescription": "what does it mean?",
    "tags": ["tag1", "tag2"],
    "malware": {"risk": "high", "family": {"type": "trojan", "name": "mybadfile"}},
    "total_rows": 4,
    "categoryDescriptions": ["desc1", "desc2"],
    "contact": [{"type": "registrant", "name": "Dave"}],
}
GREYNOISE_BODY = {
    "ip": "185.92.220.35",
    "noise": True,
    "riot": False,
    "classification": "malicious",
    "name": "unknown",
    "link": "https://viz.greynoise.io/riot/1.2.3.4",
    "last_seen": "2021-03-18",
    "message": "Success",
}
VT_MOCK_BODY = {
    "resource": "ioc",
    "permalink": "https://virustotal.com/report.html",
    "positives": 1,
    "detected_urls": [{"url": "http://bad.com/foo", "positives": 1, "scan_date": "2021-03-18 12:00:00"}],
    "verbose_msg": "A long description....",
    "response_code": 1,
}


@dataclass
class Reply:
    """One scripted answer: status, JSON body, headers and a delay before answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class SeenRequest:
    """A request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


def default_body(path: str) -> Any:
    """The provider-format answer for a request path."""
    if path.startswith("/api/v1/indicators"):
        return OTX_BODY
    if path.startswith(("/v3/community", "/v2/noise")):
        return GREYNOISE_BODY
    if path.startswith(("/api/v3/", "/vtapi/")):
        return VT_MOCK_BODY
    return XFORCE_BODY


class TIServer:
    """A real aiohttp server in a background thread answering like the TI providers."""

    def __init__(self) -> None:
        self.requests: list[SeenRequest] = []
        self.scripts: dict[str, list[Reply]] = {}
        self.bodies: dict[str, Any] = {}
        self.not_found: set[str] = set(BENIGN_IPS)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._release = threading.Event()
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, needle: str, *replies: Reply) -> None:
        """Answer requests whose path contains ``needle`` with ``replies`` in turn (the last one repeats)."""
        self.scripts[needle] = list(replies)

    def count(self, needle: str = "") -> int:
        """Requests received whose path contains ``needle``."""
        return sum(1 for r in self.requests if needle in r.path)

    def release_slow(self) -> None:
        """Let the delayed answers finish at once."""
        self._release.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            SeenRequest(request.method, request.path, dict(request.query), {k: v for k, v in request.headers.items()})
        )
        path = request.path
        for needle, replies in self.scripts.items():
            if needle in path:
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
                waited = 0.0
                while waited < reply.delay_s and not self._release.is_set():
                    await asyncio.sleep(0.01)
                    waited += 0.01
                body = reply.body if reply.body is not None else default_body(path)
                return web.Response(
                    status=reply.status, body=orjson.dumps(body), headers=reply.headers, content_type="application/json"
                )
        for needle, body in self.bodies.items():
            if needle in path:
                return web.Response(body=orjson.dumps(body), content_type="application/json")
        if any(ip in path for ip in self.not_found):
            return web.Response(status=404, body=b'{"error": "not found"}', content_type="application/json")
        return web.Response(body=orjson.dumps(default_body(path)), content_type="application/json")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self) -> TIServer:
        """Start the server thread."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Stop the server and its thread."""
        self.release_slow()
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def ti_server() -> Iterator[TIServer]:
    """A running TI server."""
    server = TIServer().start()
    try:
        yield server
    finally:
        server.stop()


class FileServer:
    """A real aiohttp server in a thread serving fixed bytes at any path (records the requests)."""

    def __init__(self, payload: bytes, status: int = 200) -> None:
        self.payload = payload
        self.status = status
        self.requests: list[SeenRequest] = []
        self._server = TIServer()
        self._server._handle = self._handle  # type: ignore[method-assign]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(SeenRequest(request.method, request.path, dict(request.query), dict(request.headers)))
        return web.Response(status=self.status, body=self.payload)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return self._server.url

    def start(self) -> FileServer:
        """Start it."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop it."""
        self._server.stop()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HandlerServer:
    """A real aiohttp server in a thread answering every request with ``handler`` (records the requests,
    raw paths included, so that tests can see what a misbehaving provider was sent)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[SeenRequest] = []
        self.raw_paths: list[str] = []
        self._server = TIServer()
        self._server._handle = self._handle  # type: ignore[method-assign]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(SeenRequest(request.method, request.path, dict(request.query), dict(request.headers)))
        self.raw_paths.append(request.raw_path)
        return await self.handler(request)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return self._server.url

    def start(self) -> HandlerServer:
        """Start it."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop it."""
        self._server.stop()


@pytest.fixture
def handler_server_factory() -> Iterator[Callable[[Handler], HandlerServer]]:
    """Start servers that answer with a handler; all are stopped at teardown."""
    servers: list[HandlerServer] = []

    def make(handler: Handler) -> HandlerServer:
        server = HandlerServer(handler).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def file_server_factory() -> Iterator[Callable[[bytes, int], FileServer]]:
    """Start file servers; all are stopped at teardown."""
    servers: list[FileServer] = []

    def make(payload: bytes, status: int = 200) -> FileServer:
        server = FileServer(payload, status).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


CITY_RECORDS = {
    "151.101.0.0/16": {
        "country": {"iso_code": "US", "names": {"en": "United States"}},
        "city": {"names": {"en": "San Francisco"}},
        "location": {"latitude": 37.7749, "longitude": -122.4194},
        "subdivisions": [{"iso_code": "CA", "names": {"en": "California"}}],
    },
    "81.2.69.0/24": {
        "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
        "city": {"names": {"en": "London"}},
        "location": {"latitude": 51.5142, "longitude": -0.0931},
        "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
    },
    "185.92.220.0/24": {
        "country": {"iso_code": "DE", "names": {"en": "Germany"}},
        "city": {"names": {"en": "Munich"}},
        "location": {"latitude": 48.1372, "longitude": 11.5756},
        "subdivisions": [{"iso_code": "BY", "names": {"en": "Bavaria"}}],
    },
}
ASN_RECORDS = {
    "151.101.0.0/16": {"autonomous_system_number": 54113, "autonomous_system_organization": "FASTLY"},
}


def write_mmdb(path: Path, database_type: str, records: dict[str, dict[str, Any]]) -> Path:
    """Write a real MaxMind DB file with mmdb_writer (records keyed by CIDR)."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(
        ip_version=6, ipv4_compatible=True, database_type=database_type, languages=["en"], description="test"
    )
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def geolite_folder(tmp_path: Path) -> Path:
    """A folder with a GeoLite2-City and a GeoLite2-ASN database."""
    write_mmdb(tmp_path / "GeoLite2-City.mmdb", "GeoLite2-City", CITY_RECORDS)
    write_mmdb(tmp_path / "GeoLite2-ASN.mmdb", "GeoLite2-ASN", ASN_RECORDS)
    return tmp_path


def tar_gz(files: dict[str, bytes]) -> bytes:
    """Build a tar.gz archive in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers of this module for the tests (importlib mode cannot import a conftest)."""
    return SimpleNamespace(
        Reply=Reply,
        BAD_IPS=BAD_IPS,
        BENIGN_IPS=BENIGN_IPS,
        OTX_BODY=OTX_BODY,
        XFORCE_BODY=XFORCE_BODY,
        GREYNOISE_BODY=GREYNOISE_BODY,
        VT_MOCK_BODY=VT_MOCK_BODY,
        CITY_RECORDS=CITY_RECORDS,
        write_mmdb=write_mmdb,
        tar_gz=tar_gz,
    )
