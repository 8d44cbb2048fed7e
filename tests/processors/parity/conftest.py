"""Fixtures of the msticpy parity tests: a real local aiohttp server standing in for VirusTotal v2 and v3."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

Handler = Callable[[web.Request], tuple[int, Any]]


@dataclass
class FakeVT:
    """Routes: ``routes[(method, path)] = (status, json_body)`` or a callable returning that pair.

    Every request is recorded in ``requests`` as ``(method, path, query dict, headers dict, body)``.
    """

    routes: dict[tuple[str, str], tuple[int, Any] | Handler] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], dict[str, str], Any]] = field(default_factory=list)
    v2: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    base_url: str = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            body = orjson.loads(raw) if raw else None
        self.requests.append((request.method, request.path, dict(request.query), dict(request.headers), body))
        if request.path.startswith("/vtapi/v2/") and request.path.endswith("/report"):
            api_type = request.path.split("/")[3]
            key = request.query.get("resource") or request.query.get("ip") or request.query.get("domain") or ""
            status, payload = self._v2_answer(api_type, key)
        else:
            route = self.routes.get((request.method, request.path))
            if route is None:
                status, payload = 404, {"error": {"code": "NotFoundError", "message": f"{request.path} not found"}}
            elif callable(route):
                status, payload = route(request)
            else:
                status, payload = route
        return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")

    def _v2_answer(self, api_type: str, key: str) -> tuple[int, Any]:
        parts = key.split(",") if api_type == "file" and "," in key else [key]
        if len(parts) > 1:
            answers = [
                self.v2.get((api_type, part.lower()), (200, {"resource": part, "response_code": 0})) for part in parts
            ]
            return 200, [payload for _, payload in answers]
        return self.v2.get(
            (api_type, key.lower()), (200, {"resource": key, "response_code": 0, "verbose_msg": "absent"})
        )


class ServerThread:
    """Run a :class:`FakeVT` on 127.0.0.1 (random port) in its own thread and event loop."""

    def __init__(self, fake: FakeVT) -> None:
        self.fake = fake
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.fake._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    def start(self) -> str:
        """Start serving and return the base URL."""
        self._thread.start()
        self.fake.base_url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self.fake.base_url

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def fake_vt() -> Iterator[FakeVT]:
    """A fresh local VirusTotal stand-in, serving until the test ends."""
    fake = FakeVT()
    server = ServerThread(fake)
    server.start()
    try:
        yield fake
    finally:
        server.stop()
