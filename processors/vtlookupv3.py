"""VirusTotal API v3 lookups: msticpy's ``VTLookupV3`` over the REST API, without ``vt-py``.

Requests go straight to ``https://www.virustotal.com/api/v3`` through
:class:`processors.enrich.http.HttpClient` (timeouts, retries, circuit breaker), a rate limiter and a
lookup cache, like :mod:`processors.vtlookup`. Results are polars DataFrames with msticpy's columns
(``id``, ``type``, the basic properties of each entity type, ``detections``, ``scans``; relationship
frames ``source, source_type, relationship_type, target, target_type``).

Deliberate differences from msticpy 1.5:

* Instances are reusable: msticpy closed its ``vt.Client`` after every call, so the second call on an
  instance failed. Here each synchronous call closes only its HTTP session; the next one opens another.
* The API key given is used (msticpy 1.5 ignored the configured key); the default comes from
  ``SECSTREAM_TI_VIRUSTOTAL_AUTHKEY``.
* Unknown observables give ``"Not found"`` rows (the fix of msticpy issue #198) and never raise; in a
  frame mixing found and not-found rows the property columns become strings.
* A relationship with no entries gives the relationship "Not found" row (msticpy returned an entity
  row in that case).
* URL observables may be given as URLs; they are turned into VirusTotal URL identifiers
  (unpadded URL-safe base64). Identifiers are used as given.
* ``create_vt_graph`` saves the graph through the REST ``/graphs`` endpoint (no ``vt_graph_api``); the
  graph itself is available as a plain dict from :meth:`VTLookupV3.build_vt_graph`.
  ``render_vt_graph`` returns a :class:`VTGraphView` that renders as an iframe in notebooks
  (``_repr_html_``) and as the graph URL in terminals, instead of displaying it as a side effect.
* An unknown ``vt_type`` raises ``KeyError`` as documented (msticpy raised ``ValueError``), and a
  non-boolean ``private`` raises ``ValueError`` as documented (msticpy raised ``TypeError``).
"""

from __future__ import annotations

import asyncio
import base64
import html
import os
from collections.abc import Coroutine, Iterable
from datetime import UTC, datetime
from enum import Enum
from typing import Any, ClassVar, TypeVar

import orjson
import polars as pl
import structlog

from processors.enrich.cache import Cacheability, CacheSettings, LookupCache
from processors.enrich.http import HttpClient, HttpResponse, HttpSettings
from processors.enrich.ratelimit import RateLimiter, RateLimits
from processors.enrich.sync import run_sync
from processors.errors import ConfigError, EnrichmentError
from processors.vtlookup import VT_PUBLIC_LIMITS

__all__ = [
    "ColumnNames",
    "MsticpyVTGraphSaveGraphError",
    "MsticpyVTNoDataError",
    "VTEntityType",
    "VTGraphView",
    "VTLookupV3",
    "VTObjectProperties",
]

_log = structlog.get_logger(module=__name__)

T = TypeVar("T")

_NOT_FOUND = "Not found"


class MsticpyVTNoDataError(EnrichmentError):
    """No data returned from the VirusTotal API (an error other than "not found")."""

    def __init__(self, reason: str = "An error occurred requesting data from VirusTotal", **kwargs: Any) -> None:
        super().__init__(reason, provider="VirusTotal", **kwargs)


class MsticpyVTGraphSaveGraphError(EnrichmentError):
    """The VirusTotal graph could not be saved."""

    def __init__(self, reason: str = "Could not save Graph.", **kwargs: Any) -> None:
        super().__init__(reason, provider="VirusTotal", **kwargs)


class VTEntityType(Enum):
    """VirusTotal entity types."""

    FILE = "file"
    URL = "url"
    IP_ADDRESS = "ip_address"
    DOMAIN = "domain"


class ColumnNames(Enum):
    """Column names of the output DataFrames."""

    ID = "id"
    TYPE = "type"
    DETECTIONS = "detections"
    SCANS = "scans"
    SOURCE = "source"
    TARGET = "target"
    TARGET_TYPE = "target_type"
    SOURCE_TYPE = "source_type"
    RELATIONSHIP_TYPE = "relationship_type"


class VTObjectProperties(Enum):
    """Properties of VirusTotal objects."""

    ATTRIBUTES = "attributes"
    RELATIONSHIPS = "relationship"
    LAST_ANALYSIS_STATS = "last_analysis_stats"
    MALICIOUS = "malicious"


class VTGraphView:
    """A saved VirusTotal graph: an iframe in notebooks, its URL in terminals.

    Args:
        graph_id: the graph identifier.
        width: iframe width in pixels.
        height: iframe height in pixels.
    """

    def __init__(self, graph_id: str, width: int = 800, height: int = 600) -> None:
        self.graph_id = graph_id
        self.width = width
        self.height = height

    @property
    def url(self) -> str:
        """The embeddable graph URL."""
        return f"https://www.virustotal.com/graph/embed/{graph_id_quote(self.graph_id)}"

    def _repr_html_(self) -> str:
        return f'<iframe src="{html.escape(self.url)}" width="{int(self.width)}" height="{int(self.height)}"></iframe>'

    def __str__(self) -> str:
        return f"VirusTotal graph {self.graph_id}: {self.url}"

    def __repr__(self) -> str:
        return f"VTGraphView(graph_id={self.graph_id!r}, width={self.width}, height={self.height})"


def graph_id_quote(graph_id: str) -> str:
    """Return ``graph_id`` safe to place in a URL path."""
    return "".join(c for c in graph_id if c.isalnum() or c in "-_.")


class VTLookupV3:
    """VTLookupV3: VirusTotal (API v3) lookup of IoC reports and relationships.

    Args:
        vt_key: VirusTotal API key (default: ``SECSTREAM_TI_VIRUSTOTAL_AUTHKEY``).
        base_url: API root (tests point it at a local server).
        http_client: shared HTTP client (one is created if omitted).
        http_settings: settings of the client created when ``http_client`` is omitted.
        rate_limits: request budget (default: the public-key budget); None for unlimited.
        max_wait_s: longest wait for a rate-limit token.
        cache: shared cache of VT objects (one is created if omitted).
        cache_settings: settings of the cache created when ``cache`` is omitted.

    Raises:
        ConfigError: if no API key is given or configured.
    """

    _SUPPORTED_VT_TYPES: ClassVar[tuple[VTEntityType, ...]] = (
        VTEntityType.FILE,
        VTEntityType.URL,
        VTEntityType.IP_ADDRESS,
        VTEntityType.DOMAIN,
    )
    _MAPPING_TYPES_ENDPOINT: ClassVar[dict[VTEntityType, str]] = {
        VTEntityType.FILE: "files",
        VTEntityType.URL: "urls",
        VTEntityType.IP_ADDRESS: "ip_addresses",
        VTEntityType.DOMAIN: "domains",
    }
    _BASIC_PROPERTIES_PER_TYPE: ClassVar[dict[VTEntityType, tuple[str, ...]]] = {
        VTEntityType.FILE: (
            "type_description",
            "size",
            "first_submission_date",
            "last_submission_date",
            "times_submitted",
            "meaningful_name",
        ),
        VTEntityType.URL: ("first_submission_date", "last_submission_date", "times_submitted"),
        VTEntityType.IP_ADDRESS: ("date", "country", "asn", "as_owner"),
        VTEntityType.DOMAIN: ("id", "creation_date", "last_update_date", "country"),
    }
    _RELATIONSHIP_BATCH: ClassVar[int] = 40

    def __init__(
        self,
        vt_key: str | None = None,
        *,
        base_url: str = "https://www.virustotal.com/api/v3",
        http_client: HttpClient | None = None,
        http_settings: HttpSettings | None = None,
        rate_limits: RateLimits | None = VT_PUBLIC_LIMITS,
        max_wait_s: float = 60.0,
        cache: LookupCache[dict[str, Any]] | None = None,
        cache_settings: CacheSettings | None = None,
    ) -> None:
        key = vt_key or os.environ.get("SECSTREAM_TI_VIRUSTOTAL_AUTHKEY")
        if not key:
            raise ConfigError("a VirusTotal API key is required", key="vt_key")
        self._vt_key = key
        self.base_url = base_url.rstrip("/")
        self._owns_client = http_client is None
        self._client = http_client or HttpClient(http_settings, provider="VirusTotal")
        self._limits = rate_limits
        self._limiter = RateLimiter(rate_limits, provider="VirusTotal") if rate_limits is not None else None
        self._max_wait_s = max_wait_s
        self._cache: LookupCache[dict[str, Any]] = cache or LookupCache(
            cache_settings or CacheSettings(), _cacheability
        )

    def __repr__(self) -> str:
        return f"VTLookupV3(base_url={self.base_url!r})"

    @property
    def supported_vt_types(self) -> list[str]:
        """Return the list of VirusTotal entity type names."""
        return [t.value for t in self._SUPPORTED_VT_TYPES]

    @property
    def cache(self) -> LookupCache[dict[str, Any]]:
        """The object cache (its ``stats`` count hits, misses and fetches)."""
        return self._cache

    async def close(self) -> None:
        """Close the HTTP session of an owned client (after using the ``*_async`` methods)."""
        if self._owns_client:
            await self._client.close()

    # ------------------------------------------------------------------------------------------
    # Entities

    def lookup_ioc(self, observable: str, vt_type: str, *, all_props: bool = False) -> pl.DataFrame:
        """Look up a single IoC observable.

        Args:
            observable: the observable (hash, URL or URL identifier, IP address, domain).
            vt_type: the VT entity type (``file``, ``url``, ``ip_address``, ``domain``).
            all_props: return every attribute instead of the basic properties.

        Returns:
            One row: ``id``, ``type``, the properties, ``detections`` and ``scans`` (or "Not found").

        Raises:
            KeyError: unknown ``vt_type``.
            MsticpyVTNoDataError: VirusTotal answered with an error other than "not found".
        """
        return run_sync(self._closing(self.lookup_ioc_async(observable, vt_type, all_props=all_props)))

    async def lookup_ioc_async(self, observable: str, vt_type: str, *, all_props: bool = False) -> pl.DataFrame:
        """Async variant of :meth:`lookup_ioc`."""
        return pl.DataFrame([await self._entity_row(observable, vt_type, all_props=all_props)])

    def lookup_iocs(
        self,
        observables_df: Any,
        observable_column: str = ColumnNames.TARGET.value,
        observable_type_column: str = ColumnNames.TARGET_TYPE.value,
        *,
        all_props: bool = False,
    ) -> pl.DataFrame:
        """Look up several IoC observables (one per row of a polars or pandas DataFrame).

        Args:
            observables_df: the observables.
            observable_column: column holding the observable IDs.
            observable_type_column: column holding the VT entity types.
            all_props: return every attribute instead of the basic properties.

        Returns:
            One row per observable.

        Raises:
            KeyError: a column is missing, or an unknown ``vt_type``.
            MsticpyVTNoDataError: VirusTotal answered with an error other than "not found".
        """
        return run_sync(
            self._closing(
                self.lookup_iocs_async(observables_df, observable_column, observable_type_column, all_props=all_props)
            )
        )

    async def lookup_iocs_async(
        self,
        observables_df: Any,
        observable_column: str = ColumnNames.TARGET.value,
        observable_type_column: str = ColumnNames.TARGET_TYPE.value,
        *,
        all_props: bool = False,
    ) -> pl.DataFrame:
        """Async variant of :meth:`lookup_iocs`."""
        pairs = _pairs(observables_df, observable_column, observable_type_column)
        rows = await self._gather(self._entity_row(obs, typ, all_props=all_props) for obs, typ in pairs)
        return _rows_frame(rows)

    def get_object(self, vt_id: str, vt_type: str) -> pl.DataFrame:
        """Return the full VT object as a one-row DataFrame.

        Args:
            vt_id: the object ID.
            vt_type: the VT entity type.

        Returns:
            ``id``, ``type``, every attribute (``*_date`` as UTC datetimes) and ``context_attributes``;
            the "Not found" row if VirusTotal does not know the object.

        Raises:
            KeyError: unknown ``vt_type``.
            MsticpyVTNoDataError: VirusTotal answered with an error other than "not found".
        """
        return run_sync(self._closing(self.get_object_async(vt_id, vt_type)))

    async def get_object_async(self, vt_id: str, vt_type: str) -> pl.DataFrame:
        """Async variant of :meth:`get_object`."""
        entity = _entity_type(vt_type)
        obj = await self._fetch_object(entity, vt_id)
        if obj.get("_not_found"):
            return pl.DataFrame([self._item_not_found_row(entity, vt_id)])
        row: dict[str, Any] = {"id": obj.get("id", vt_id), "type": obj.get("type", entity.value)}
        row.update(_convert_dates(obj.get("attributes") or {}))
        row["context_attributes"] = obj.get("context_attributes")
        return _one_row(row)

    # ------------------------------------------------------------------------------------------
    # Relationships

    def lookup_ioc_relationships(
        self,
        observable: str,
        vt_type: str,
        relationship: str,
        limit: int | None = None,
        *,
        all_props: bool = False,
    ) -> pl.DataFrame:
        """Look up the relationships of one observable.

        Args:
            observable: the observable ID.
            vt_type: the VT entity type.
            relationship: the relationship (e.g. ``contacted_urls``, ``resolutions``).
            limit: most related objects to return (default: all, counted first).
            all_props: keep every attribute of related objects that carry attributes.

        Returns:
            Rows ``source, source_type, relationship_type, target, target_type`` (+ properties); one
            row with target "Not found" if there are none.

        Raises:
            KeyError: unknown ``vt_type``.
            MsticpyVTNoDataError: VirusTotal answered with an error other than "not found".
        """
        return run_sync(
            self._closing(
                self.lookup_ioc_relationships_async(observable, vt_type, relationship, limit, all_props=all_props)
            )
        )

    async def lookup_ioc_relationships_async(
        self,
        observable: str,
        vt_type: str,
        relationship: str,
        limit: int | None = None,
        *,
        all_props: bool = False,
    ) -> pl.DataFrame:
        """Async variant of :meth:`lookup_ioc_relationships`."""
        return _rows_frame(await self._relationship_rows(observable, vt_type, relationship, limit, all_props))

    def lookup_iocs_relationships(
        self,
        observables_df: Any,
        relationship: str,
        observable_column: str = ColumnNames.TARGET.value,
        observable_type_column: str = ColumnNames.TARGET_TYPE.value,
        limit: int | None = None,
        *,
        all_props: bool = False,
    ) -> pl.DataFrame:
        """Look up a relationship of several observables (one per DataFrame row).

        Args:
            observables_df: the observables (polars or pandas).
            relationship: the relationship.
            observable_column: column holding the observable IDs.
            observable_type_column: column holding the VT entity types.
            limit: most related objects per observable (default: all).
            all_props: keep every attribute of related objects.

        Returns:
            The relationship rows of every observable.

        Raises:
            KeyError: a column is missing, or an unknown ``vt_type``.
            MsticpyVTNoDataError: VirusTotal answered with an error other than "not found".
        """
        return run_sync(
            self._closing(
                self.lookup_iocs_relationships_async(
                    observables_df, relationship, observable_column, observable_type_column, limit, all_props=all_props
                )
            )
        )

    async def lookup_iocs_relationships_async(
        self,
        observables_df: Any,
        relationship: str,
        observable_column: str = ColumnNames.TARGET.value,
        observable_type_column: str = ColumnNames.TARGET_TYPE.value,
        limit: int | None = None,
        *,
        all_props: bool = False,
    ) -> pl.DataFrame:
        """Async variant of :meth:`lookup_iocs_relationships`."""
        pairs = _pairs(observables_df, observable_column, observable_type_column)
        groups = await self._gather(
            self._relationship_rows(obs, typ, relationship, limit, all_props) for obs, typ in pairs
        )
        return _rows_frame([row for group in groups for row in group])

    # ------------------------------------------------------------------------------------------
    # Graphs

    @staticmethod
    def relationships_to_graph(relationship_dfs: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Return graph nodes ``{node_id, node_type}`` and edges ``{source_node, target_node, connection_type}``.

        Args:
            relationship_dfs: relationship frames (polars or pandas) from the relationship lookups.

        Returns:
            ``(nodes, edges)``; "Not found" targets are left out.

        Raises:
            ValueError: if no frames are given.
        """
        if not relationship_dfs:
            raise ValueError("There are no relationship DataFrames")
        nodes: dict[str, str] = {}
        edges: list[dict[str, Any]] = []
        for frame in relationship_dfs:
            for row in _as_polars(frame).iter_rows(named=True):
                source, target = row.get("source"), row.get("target")
                if source is not None:
                    nodes.setdefault(str(source), str(row.get("source_type")))
                if target is None or target == _NOT_FOUND or source is None:
                    continue
                nodes.setdefault(str(target), str(row.get("target_type")))
                edge = {
                    "source_node": str(source),
                    "target_node": str(target),
                    "connection_type": str(row.get("relationship_type")),
                }
                if edge not in edges:
                    edges.append(edge)
        return [{"node_id": k, "node_type": v} for k, v in nodes.items()], edges

    def build_vt_graph(self, relationship_dfs: list[Any], name: str, private: bool) -> dict[str, Any]:
        """Build the VirusTotal graph document of a set of relationship frames (nothing is sent).

        Args:
            relationship_dfs: relationship frames.
            name: graph name.
            private: whether the graph is private.

        Returns:
            A JSON-ready dict: ``{"data": {"type": "graph", "attributes": {...nodes, links...}}}``.

        Raises:
            ValueError: ``private`` is not a bool, or there are no frames.
        """
        if not isinstance(private, bool):
            raise ValueError("Please indicate if Graph is private or not")
        nodes, edges = self.relationships_to_graph(relationship_dfs)
        return {
            "data": {
                "type": "graph",
                "attributes": {
                    "graph_data": {
                        "description": name,
                        "nodes": [{"entity_id": n["node_id"], "type": n["node_type"]} for n in nodes],
                        "links": [
                            {
                                "source": e["source_node"],
                                "target": e["target_node"],
                                "connection_type": e["connection_type"],
                            }
                            for e in edges
                        ],
                    },
                    "private": private,
                },
            }
        }

    def create_vt_graph(self, relationship_dfs: list[Any], name: str, private: bool) -> str:
        """Create (save) a VirusTotal graph from relationship frames.

        Args:
            relationship_dfs: relationship frames.
            name: new graph name.
            private: whether the graph is private (a premium feature).

        Returns:
            The graph ID.

        Raises:
            ValueError: ``private`` is not a bool, or there are no frames.
            MsticpyVTGraphSaveGraphError: the graph could not be saved.
        """
        return run_sync(self._closing(self.create_vt_graph_async(relationship_dfs, name, private)))

    async def create_vt_graph_async(self, relationship_dfs: list[Any], name: str, private: bool) -> str:
        """Async variant of :meth:`create_vt_graph`."""
        document = self.build_vt_graph(relationship_dfs, name, private)
        try:
            response = await self._request("POST", "/graphs", data=document)
        except EnrichmentError as err:
            raise MsticpyVTGraphSaveGraphError(f"Could not save Graph: {err.reason}") from err
        body = _json_or_none(response)
        graph_id = body.get("data", {}).get("id") if isinstance(body, dict) else None
        if response.status not in (200, 201) or not graph_id:
            hint = " Private graphs need the Private Graph premium feature." if private else ""
            raise MsticpyVTGraphSaveGraphError(f"Could not save Graph (HTTP {response.status}).{hint}")
        return str(graph_id)

    @staticmethod
    def render_vt_graph(graph_id: str, width: int = 800, height: int = 600) -> VTGraphView:
        """Return a view of a VirusTotal graph (an iframe in notebooks, the URL in terminals).

        Args:
            graph_id: the graph ID.
            width: iframe width.
            height: iframe height.

        Returns:
            The view.
        """
        return VTGraphView(graph_id, width, height)

    # ------------------------------------------------------------------------------------------
    # Internals

    async def _closing(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return await coro
        finally:
            await self.close()

    async def _gather(self, coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
        concurrency = self._limits.max_concurrency if self._limits is not None else 8
        gate = asyncio.Semaphore(max(1, concurrency))

        async def run(coro: Coroutine[Any, Any, T]) -> T:
            async with gate:
                return await coro

        return list(await asyncio.gather(*(run(c) for c in coros)))

    async def _request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, data: Any = None
    ) -> HttpResponse:
        if self._limiter is not None:
            await self._limiter.acquire(self._max_wait_s)
        response = await self._client.request(
            method,
            self.base_url + path,
            headers={"x-apikey": self._vt_key, "Accept": "application/json"},
            params=params,
            data=data,
        )
        return response.redacted([self._vt_key])

    async def _get_json(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any] | None:
        """GET ``path``; None on 404; the JSON body on 200; MsticpyVTNoDataError otherwise."""
        try:
            response = await self._request("GET", path, params=params)
        except EnrichmentError as err:
            raise MsticpyVTNoDataError(f"An error occurred requesting data from VirusTotal: {err.reason}") from err
        if response.status == 404:
            return None
        body = _json_or_none(response)
        if response.status != 200 or not isinstance(body, dict):
            raise MsticpyVTNoDataError(f"An error occurred requesting data from VirusTotal (HTTP {response.status})")
        return body

    async def _fetch_object(self, entity: VTEntityType, observable: str) -> dict[str, Any]:
        endpoint = self._MAPPING_TYPES_ENDPOINT[entity]
        object_id = _object_id(entity, observable)
        key = ("vt3", endpoint, object_id)

        async def fetch() -> dict[str, Any]:
            body = await self._get_json(f"/{endpoint}/{object_id}")
            if body is None:
                return {"_not_found": True, "id": observable, "type": entity.value}
            data = body.get("data")
            if not isinstance(data, dict):
                raise MsticpyVTNoDataError("VirusTotal answer has no data object")
            return data

        return await self._cache.get_or_fetch(key, fetch)

    async def _entity_row(self, observable: str, vt_type: str, *, all_props: bool) -> dict[str, Any]:
        entity = _entity_type(vt_type)
        obj = await self._fetch_object(entity, observable)
        if obj.get("_not_found"):
            return self._item_not_found_row(entity, observable)
        return self._parse_vt_object(obj, all_props=all_props, default_type=entity)

    @classmethod
    def _parse_vt_object(
        cls, obj: dict[str, Any], *, all_props: bool = False, default_type: VTEntityType | None = None
    ) -> dict[str, Any]:
        """Return msticpy's row of a VT object: id, type, properties, detections, scans."""
        row: dict[str, Any] = {
            "id": obj.get("id"),
            "type": obj.get("type", default_type.value if default_type else None),
        }
        attributes = obj.get(VTObjectProperties.ATTRIBUTES.value)
        if isinstance(attributes, dict):
            try:
                entity: VTEntityType | None = VTEntityType(row["type"])
            except ValueError:
                entity = None
            if all_props or entity is None:
                props = dict(attributes)
            else:
                props = {k: attributes[k] for k in cls._BASIC_PROPERTIES_PER_TYPE[entity] if k in attributes}
            props.pop("id", None)  # the object's id is the row's id
            row.update(_convert_dates(props))
            stats = attributes.get(VTObjectProperties.LAST_ANALYSIS_STATS.value)
            if isinstance(stats, dict) and stats:
                row[ColumnNames.DETECTIONS.value] = stats.get(VTObjectProperties.MALICIOUS.value)
                row[ColumnNames.SCANS.value] = sum(v for v in stats.values() if isinstance(v, int))
        return row

    @classmethod
    def _item_not_found_row(cls, entity: VTEntityType, observable: str) -> dict[str, Any]:
        row: dict[str, Any] = {"id": observable, "type": entity.value}
        row.update(dict.fromkeys((p for p in cls._BASIC_PROPERTIES_PER_TYPE[entity] if p != "id"), _NOT_FOUND))
        return row

    @staticmethod
    def _relation_not_found_row(vt_type: str, observable: str, relationship: str) -> dict[str, Any]:
        return {
            "source": observable,
            "source_type": vt_type,
            "relationship_type": relationship,
            "target": _NOT_FOUND,
            "target_type": _NOT_FOUND,
        }

    async def _relationship_rows(
        self, observable: str, vt_type: str, relationship: str, limit: int | None, all_props: bool
    ) -> list[dict[str, Any]]:
        entity = _entity_type(vt_type)
        endpoint = self._MAPPING_TYPES_ENDPOINT[entity]
        object_id = _object_id(entity, observable)
        not_found = [self._relation_not_found_row(entity.value, observable, relationship)]
        if limit is None:
            body = await self._get_json(f"/{endpoint}/{object_id}", {"relationship_counters": "true"})
            if body is None:
                return not_found
            relationships = (body.get("data") or {}).get("relationships") or {}
            meta = (relationships.get(relationship) or {}).get("meta") or {}
            limit = int(meta.get("count") or 0)
        if limit <= 0:
            return not_found
        related: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(related) < limit:
            params = {"limit": str(min(self._RELATIONSHIP_BATCH, limit - len(related)))}
            if cursor:
                params["cursor"] = cursor
            body = await self._get_json(f"/{endpoint}/{object_id}/relationships/{relationship}", params)
            if body is None:
                break
            data = body.get("data")
            page = [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
            related.extend(page)
            cursor = (body.get("meta") or {}).get("cursor")
            if not page or not cursor:
                break
        if not related:
            return not_found
        rows = []
        for obj in related[:limit]:
            parsed = self._parse_vt_object(obj, all_props=all_props)
            row = {
                "source": observable,
                "source_type": entity.value,
                "relationship_type": relationship,
                "target": parsed.pop("id"),
                "target_type": parsed.pop("type"),
            }
            row.update(parsed)
            rows.append(row)
        return rows


# ---------------------------------------------------------------------------------------------------
# Helpers


def _cacheability(obj: dict[str, Any]) -> Cacheability:
    return Cacheability.negative if obj.get("_not_found") else Cacheability.positive


def _entity_type(vt_type: str) -> VTEntityType:
    try:
        return VTEntityType(vt_type)
    except ValueError:
        valid = ", ".join(t.value for t in VTEntityType)
        raise KeyError(f"Property type {vt_type} not supported. Valid types are: {valid}") from None


def _object_id(entity: VTEntityType, observable: str) -> str:
    """VT URL identifiers are unpadded URL-safe base64 of the URL; other IDs are used as given."""
    if entity is VTEntityType.URL and "://" in observable:
        return base64.urlsafe_b64encode(observable.encode()).decode().rstrip("=")
    return observable


def _convert_dates(values: dict[str, Any]) -> dict[str, Any]:
    """Turn epoch-second ``*_date`` values (and IP ``date``) into UTC datetimes."""
    out = {}
    for key, value in values.items():
        if (key.endswith("_date") or key == "date") and isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = datetime.fromtimestamp(value, tz=UTC)
        else:
            out[key] = value
    return out


def _json_or_none(response: HttpResponse) -> Any:
    try:
        return response.json()
    except orjson.JSONDecodeError:
        return None


def _one_row(row: dict[str, Any]) -> pl.DataFrame:
    """A one-row frame; nested values that polars cannot type become JSON text."""
    try:
        return pl.DataFrame([row], strict=False)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        flat = {k: orjson.dumps(v).decode() if isinstance(v, dict | list) else v for k, v in row.items()}
        return pl.DataFrame([flat], strict=False)


def _rows_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Stack rows; columns whose types differ between rows (e.g. "Not found") become strings."""
    if not rows:
        return pl.DataFrame()
    return pl.concat([_one_row(row) for row in rows], how="diagonal_relaxed")


def _as_polars(data: Any) -> pl.DataFrame:
    if isinstance(data, pl.DataFrame):
        return data
    if type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame":
        return pl.from_pandas(data.reset_index(drop=True))
    raise TypeError(f"expected a polars or pandas DataFrame, got {type(data).__name__}")


def _pairs(data: Any, observable_column: str, type_column: str) -> list[tuple[str, str]]:
    frame = _as_polars(data)
    for column in (observable_column, type_column):
        if column not in frame.columns:
            raise KeyError(f"Column {column} not found in observables_df")
    return list(
        zip(
            frame[observable_column].cast(pl.String).to_list(),
            frame[type_column].cast(pl.String).to_list(),
            strict=True,
        )
    )
