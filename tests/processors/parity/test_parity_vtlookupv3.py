"""VTLookupV3 (VirusTotal v3 REST) against a real local server serving msticpy's vt3_*.json fixtures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest
from aiohttp import web

from processors.enrich.http import HttpSettings
from processors.errors import ConfigError
from processors.vtlookupv3 import (
    ColumnNames,
    MsticpyVTGraphSaveGraphError,
    MsticpyVTNoDataError,
    VTEntityType,
    VTGraphView,
    VTLookupV3,
    VTObjectProperties,
)

FakeVT = Any  # the fake_vt fixture's type (tests/processors/parity/conftest.py)

API = "/api/v3"


def _load(testdata: Path, name: str) -> Any:
    return json.loads((testdata / name).read_text(encoding="utf-8"))


@pytest.fixture
def objects(msticpy_testdata: Path) -> dict[str, Any]:
    """The v3 fixtures by name."""
    return {n: _load(msticpy_testdata, f"vt3_{n}.json") for n in ("file_1", "url_0", "url_1", "url_2", "related_links")}


@pytest.fixture
def vt3(fake_vt: FakeVT, objects: dict[str, Any]) -> VTLookupV3:
    """A VTLookupV3 pointed at the local server, which serves the file and URL objects."""
    for name in ("file_1", "url_0", "url_1", "url_2"):
        obj = objects[name]
        endpoint = {"file": "files", "url": "urls"}[obj["type"]]
        fake_vt.routes[("GET", f"{API}/{endpoint}/{obj['id']}")] = (200, {"data": obj})
    return VTLookupV3(
        "k3", base_url=fake_vt.base_url + API, rate_limits=None, http_settings=HttpSettings(max_retries=0)
    )


class TestVTLookupV3Entities:
    """Entity lookups."""

    def test_file_basic_properties(self, vt3: VTLookupV3, objects: dict[str, Any], fake_vt: FakeVT) -> None:
        """A file row has id, type, the basic file properties, detections and scans; dates are UTC datetimes."""
        file_obj = objects["file_1"]
        out = vt3.lookup_ioc(file_obj["id"], "file")
        assert out.height == 1
        row = out.row(0, named=True)
        attrs = file_obj["attributes"]
        stats = attrs["last_analysis_stats"]
        assert row["id"] == file_obj["id"]
        assert row["type"] == "file"
        assert row["size"] == attrs["size"]
        assert row["meaningful_name"] == attrs["meaningful_name"]
        assert row["detections"] == stats["malicious"]
        assert row["scans"] == sum(stats.values())
        assert row["first_submission_date"] == datetime.fromtimestamp(attrs["first_submission_date"], tz=UTC)
        assert "md5" not in out.columns
        assert fake_vt.requests[0][3]["x-apikey"] == "k3"

    def test_all_props(self, vt3: VTLookupV3, objects: dict[str, Any]) -> None:
        """all_props keeps every attribute."""
        out = vt3.lookup_ioc(objects["file_1"]["id"], "file", all_props=True)
        assert {"md5", "sha1", "sha256", "ssdeep"} <= set(out.columns)

    def test_not_found_row(self, vt3: VTLookupV3) -> None:
        """An unknown observable gives a "Not found" row instead of an error (msticpy #198)."""
        out = vt3.lookup_ioc("0" * 64, "file")
        row = out.row(0, named=True)
        assert (row["id"], row["type"], row["size"], row["meaningful_name"]) == (
            "0" * 64,
            "file",
            "Not found",
            "Not found",
        )

    def test_api_error_raises_no_data(self, vt3: VTLookupV3, fake_vt: FakeVT) -> None:
        """An error other than not-found raises MsticpyVTNoDataError."""
        fake_vt.routes[("GET", f"{API}/domains/example.com")] = (401, {"error": {"code": "WrongCredentialsError"}})
        with pytest.raises(MsticpyVTNoDataError):
            vt3.lookup_ioc("example.com", "domain")

    def test_unknown_type_raises_key_error(self, vt3: VTLookupV3) -> None:
        """An unknown vt_type raises KeyError as documented."""
        with pytest.raises(KeyError):
            vt3.lookup_ioc("x", "registry_key")

    def test_instance_is_reusable(self, vt3: VTLookupV3, objects: dict[str, Any]) -> None:
        """Several calls on one instance all work (msticpy 1.5 closed its client after the first)."""
        for name in ("url_0", "url_1", "url_2"):
            assert vt3.lookup_ioc(objects[name]["id"], "url")["id"][0] == objects[name]["id"]

    def test_url_given_as_url(self, vt3: VTLookupV3, fake_vt: FakeVT, objects: dict[str, Any]) -> None:
        """A URL is turned into its VT identifier (unpadded URL-safe base64)."""
        fake_vt.routes[("GET", f"{API}/urls/aHR0cDovL2V4YW1wbGUuY29tLw")] = (200, {"data": objects["url_0"]})
        out = vt3.lookup_ioc("http://example.com/", "url")
        assert out["times_submitted"][0] == objects["url_0"]["attributes"]["times_submitted"]

    def test_lookup_iocs_mixes_found_and_not_found(self, vt3: VTLookupV3, objects: dict[str, Any]) -> None:
        """Several observables give one row each, not-found ones included; pandas input works."""
        data = pd.DataFrame(
            {"target": [objects["url_0"]["id"], "f" * 64, objects["url_1"]["id"]], "target_type": ["url", "url", "url"]}
        )
        out = vt3.lookup_iocs(data)
        assert out["id"].to_list() == data["target"].to_list()
        assert out["times_submitted"][1] == "Not found"
        assert out["detections"].to_list()[:2] == [
            objects["url_0"]["attributes"]["last_analysis_stats"]["malicious"],
            None,
        ]

    def test_lookup_iocs_missing_column(self, vt3: VTLookupV3) -> None:
        """A missing column raises KeyError."""
        with pytest.raises(KeyError):
            vt3.lookup_iocs(pl.DataFrame({"target": ["x"]}))

    def test_get_object_is_wide(self, vt3: VTLookupV3, objects: dict[str, Any]) -> None:
        """get_object returns every attribute plus context_attributes in one row."""
        obj = objects["url_0"]
        out = vt3.get_object(obj["id"], "url")
        assert out.height == 1
        assert {"id", "type", "url", "last_final_url", "context_attributes", "last_analysis_results"} <= set(
            out.columns
        )
        assert out["url"][0] == obj["attributes"]["url"]

    def test_cache_avoids_second_request(self, vt3: VTLookupV3, fake_vt: FakeVT, objects: dict[str, Any]) -> None:
        """A repeated lookup is answered from the cache."""
        vt3.lookup_ioc(objects["url_0"]["id"], "url")
        vt3.lookup_ioc(objects["url_0"]["id"], "url")
        assert len(fake_vt.requests) == 1

    def test_key_required(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a key (argument or environment) construction fails clearly."""
        monkeypatch.delenv("SECSTREAM_TI_VIRUSTOTAL_AUTHKEY", raising=False)
        with pytest.raises(ConfigError):
            VTLookupV3()

    def test_enums(self) -> None:
        """The enums have msticpy's values."""
        assert VTEntityType("ip_address") is VTEntityType.IP_ADDRESS
        assert ColumnNames.RELATIONSHIP_TYPE.value == "relationship_type"
        assert VTObjectProperties.RELATIONSHIPS.value == "relationship"
        assert VTLookupV3("k").supported_vt_types == ["file", "url", "ip_address", "domain"]


class TestVTLookupV3Relationships:
    """Relationship lookups and graphs."""

    @pytest.fixture
    def file_id(self, fake_vt: FakeVT, objects: dict[str, Any]) -> str:
        """A file with three contacted URLs (vt3_related_links.json), served in pages of two."""
        file_obj = objects["file_1"]
        fid = file_obj["id"]
        links = objects["related_links"]

        def counters(request: web.Request) -> tuple[int, Any]:
            data = dict(file_obj)
            if request.query.get("relationship_counters") == "true":
                data["relationships"] = {"contacted_urls": {"meta": {"count": len(links)}}}
            return 200, {"data": data}

        def pages(request: web.Request) -> tuple[int, Any]:
            start = int(request.query.get("cursor", "0"))
            size = min(2, int(request.query["limit"]))
            meta = {"cursor": str(start + size)} if start + size < len(links) else {}
            return 200, {"data": links[start : start + size], "meta": meta}

        fake_vt.routes[("GET", f"{API}/files/{fid}")] = counters
        fake_vt.routes[("GET", f"{API}/files/{fid}/relationships/contacted_urls")] = pages
        return fid

    def test_relationships_follow_cursor(self, vt3: VTLookupV3, file_id: str, objects: dict[str, Any]) -> None:
        """All three related URLs are returned, across pages, with source and relationship columns."""
        out = vt3.lookup_ioc_relationships(file_id, "file", "contacted_urls")
        assert out.height == 3
        assert out["target"].to_list() == [o["id"] for o in objects["related_links"]]
        assert set(out["source"].to_list()) == {file_id}
        assert set(out["relationship_type"].to_list()) == {"contacted_urls"}
        assert set(out["target_type"].to_list()) == {"url"}
        assert out["detections"].to_list()[1] == 10

    def test_limit(self, vt3: VTLookupV3, file_id: str, fake_vt: FakeVT) -> None:
        """An explicit limit skips the counter request and caps the rows."""
        out = vt3.lookup_ioc_relationships(file_id, "file", "contacted_urls", limit=1)
        assert out.height == 1
        assert all("relationships" in r[1] for r in fake_vt.requests)

    def test_no_relationship_gives_not_found_row(self, vt3: VTLookupV3, file_id: str) -> None:
        """A relationship with no entries gives the relationship "Not found" row."""
        out = vt3.lookup_ioc_relationships(file_id, "file", "dropped_files")
        assert out.row(0, named=True) == {
            "source": file_id,
            "source_type": "file",
            "relationship_type": "dropped_files",
            "target": "Not found",
            "target_type": "Not found",
        }

    def test_unknown_observable_gives_not_found_row(self, vt3: VTLookupV3) -> None:
        """An unknown observable gives the "Not found" relationship row (no exception)."""
        out = vt3.lookup_ioc_relationships("a" * 64, "file", "contacted_urls")
        assert out["target"].to_list() == ["Not found"]

    def test_many_observables_and_graph(self, vt3: VTLookupV3, file_id: str, fake_vt: FakeVT) -> None:
        """Relationships of several observables stack; they build and save a graph."""
        data = pl.DataFrame({"target": [file_id, "b" * 64], "target_type": ["file", "file"]})
        rels = vt3.lookup_iocs_relationships(data, "contacted_urls")
        assert rels.height == 4
        nodes, edges = VTLookupV3.relationships_to_graph([rels])
        assert len(nodes) == 5 and len(edges) == 3
        document = vt3.build_vt_graph([rels], "case 42", private=False)
        assert document["data"]["attributes"]["graph_data"]["description"] == "case 42"
        fake_vt.routes[("POST", f"{API}/graphs")] = (200, {"data": {"id": "g-123", "type": "graph"}})
        assert vt3.create_vt_graph([rels], "case 42", False) == "g-123"
        posted = fake_vt.requests[-1][4]
        assert len(posted["data"]["attributes"]["graph_data"]["links"]) == 3

    def test_graph_errors(self, vt3: VTLookupV3, fake_vt: FakeVT) -> None:
        """A refused save raises MsticpyVTGraphSaveGraphError; bad arguments raise ValueError."""
        rel = pl.DataFrame(
            {
                "source": ["a"],
                "source_type": ["file"],
                "relationship_type": ["r"],
                "target": ["b"],
                "target_type": ["url"],
            }
        )
        fake_vt.routes[("POST", f"{API}/graphs")] = (403, {"error": {"code": "ForbiddenError"}})
        with pytest.raises(MsticpyVTGraphSaveGraphError):
            vt3.create_vt_graph([rel], "g", True)
        with pytest.raises(ValueError, match="private"):
            vt3.create_vt_graph([rel], "g", "yes")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="no relationship"):
            vt3.create_vt_graph([], "g", False)

    def test_render_graph(self) -> None:
        """render_vt_graph returns an object showing an iframe in notebooks and the URL in terminals."""
        view = VTLookupV3.render_vt_graph("g-123", width=500)
        assert isinstance(view, VTGraphView)
        assert (
            '<iframe src="https://www.virustotal.com/graph/embed/g-123" width="500" height="600">' in view._repr_html_()
        )
        assert "https://www.virustotal.com/graph/embed/g-123" in str(view)
        assert "<" not in VTGraphView('"><script>')._repr_html_().split('src="')[1].split('"')[0]
