"""Per-event observable analysis: IoCs in a text and in every base64/compressed layer hidden in it.

This is the one call the stream makes on every event (:func:`annotate_event`), so it is built for
short command lines: each IoC type and the base64 scan first run a ``bytes``/``str`` membership or
length check and only then a (linear-time, RE2) regex.

Result shape on an ECS document::

    secstream.iocs      {ioc_type: sorted list}          IoCs of the text and of all decoded layers
    secstream.decoded   [{depth, index, encoding, file_type, file_name, encoding_type, size,
                          md5, sha256, text (text layers only, capped)}]
    secstream.analysis  {"truncated": true, "decode_limits": [...]}   only when a limit was hit
    related.ip / related.hosts / related.hash                         merged, sorted, unique

``truncated`` means the text was longer than the extractor's ``max_input_chars`` and only its head
was scanned for IoCs; ``decode_limits`` names the base64 limits (``max_total_bytes``, ``max_members``,
``max_depth``, ``max_candidates``, ``max_input_chars``, ``corrupt_<type>``) that cut decoding short.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import re2

from processors.document import get_path
from processors.ioc.extract import IocExtractor
from processors.ioc.unpack import Base64Settings, BinaryRecord, unpack_text

__all__ = [
    "DEFAULT_ANALYSIS_FIELDS",
    "DecodedLayer",
    "ObservablesSettings",
    "TextAnalysis",
    "analyze_text",
    "annotate_event",
]

# The parent's command line is not analysed: the parent's own event carries its analysis, and copying it
# into every child would make the rules fire again on each child of a process with a base64 payload.
DEFAULT_ANALYSIS_FIELDS: tuple[str, ...] = ("process.command_line", "message")

_HASH_TYPES = ("md5_hash", "sha1_hash", "sha256_hash", "sha512_hash")
_CONTAINER_TYPES = frozenset({"zip", "tar", "gz", "zlib", "bz2", "xz"})


# The cheap gate before unpacking looks for a run of this many base64 characters (or of min_length, when
# that is shorter). It is not min_length itself: a PEM-style block counts as one run across its lines.
_B64_GATE_RUN = 30


@functools.cache
def _b64_prefilter(run: int) -> Any:
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    return re2.compile(rb"[A-Za-z0-9+/]{%d}" % run, options=options)._regexp


_UNANCHORED = re2._Anchor.UNANCHORED


def _may_hold_base64(text: str, min_length: int) -> bool:
    """Return whether ``text`` is worth unpacking: ``min_length`` long with a run of base64 characters."""
    run = min(min_length, _B64_GATE_RUN)
    if len(text) < min_length or len(text) < run:
        return False
    data = text.encode("utf-8", "surrogatepass")
    return bool(_b64_prefilter(run).Match(_UNANCHORED, data, 0, len(data))[0][0] != -1)


@dataclass(frozen=True, slots=True)
class ObservablesSettings:
    """Settings of the observable analysis.

    Attributes:
        ioc_types: IoC types to extract (None: all but the path types).
        include_paths: also extract windows_path and linux_path.
        ignore_tlds: skip TLD validation.
        decode_base64: look for base64 payloads and analyse the decoded layers.
        base64: limits of the base64 unpacker.
        max_layer_text_chars: decoded text kept per layer in ``secstream.decoded`` (IoCs use all of it).
        max_layers_per_event: decoded layers kept in one event's ``secstream.decoded`` (all fields together).
        max_ioc_chars_per_event: characters of IoC values kept in one event's ``secstream.iocs`` (text made of
            overlapping URLs yields far more IoC text than it has); the shortest values are kept first.
    """

    ioc_types: tuple[str, ...] | None = None
    include_paths: bool = False
    ignore_tlds: bool = False
    decode_base64: bool = True
    base64: Base64Settings = field(default_factory=Base64Settings)
    max_layer_text_chars: int = 4096
    max_layers_per_event: int = 64
    max_ioc_chars_per_event: int = 65_536


@dataclass(slots=True)
class DecodedLayer:
    """One decoded item found in a text.

    Attributes:
        depth: nesting depth (1 = base64 directly in the text).
        index: hierarchical index as in the unpacker's markup (``"1.2"``).
        encoding: how it was hidden: ``base64`` or the container it came from (``zip``, ``gz``...).
        file_type: detected file type (None for plain text / unknown).
        file_name: archive member name, or ``"unknown"``.
        encoding_type: ``utf-8``, ``utf-16`` or ``binary``.
        size: decoded size in bytes.
        md5: md5 of the decoded bytes.
        sha256: sha256 of the decoded bytes.
        text: the decoded text (text layers only, capped).
    """

    depth: int
    index: str
    encoding: str
    file_type: str | None
    file_name: str
    encoding_type: str
    size: int
    md5: str
    sha256: str
    text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the layer as plain data (``text`` omitted for binaries).

        Returns:
            dict ready for orjson.
        """
        out: dict[str, Any] = {
            "depth": self.depth,
            "index": self.index,
            "encoding": self.encoding,
            "file_type": self.file_type,
            "file_name": self.file_name,
            "encoding_type": self.encoding_type,
            "size": self.size,
            "md5": self.md5,
            "sha256": self.sha256,
        }
        if self.text is not None:
            out["text"] = self.text
        return out


@dataclass(slots=True)
class TextAnalysis:
    """Result of :func:`analyze_text`.

    Attributes:
        iocs: ``{ioc_type: sorted observables}`` from the text and all decoded layers.
        layers: the decoded layers in document order.
        truncated: the text (or a decoded layer) was cut to the extractor's size cap for IoC scanning.
        decode_limits: base64/archive limits that were hit.
    """

    iocs: dict[str, list[str]] = field(default_factory=dict)
    layers: list[DecodedLayer] = field(default_factory=list)
    truncated: bool = False
    decode_limits: list[str] = field(default_factory=list)

    @property
    def flags(self) -> dict[str, Any]:
        """Return the non-default flags (empty when the analysis was complete).

        Returns:
            ``{"truncated": True}`` and/or ``{"decode_limits": [...]}``.
        """
        out: dict[str, Any] = {}
        if self.truncated:
            out["truncated"] = True
        if self.decode_limits:
            out["decode_limits"] = list(self.decode_limits)
        return out


_DEFAULT_LOCK = threading.Lock()
_DEFAULT: list[IocExtractor] = []


def _default_extractor() -> IocExtractor:
    if not _DEFAULT:
        with _DEFAULT_LOCK:
            if not _DEFAULT:
                _DEFAULT.append(IocExtractor())
    return _DEFAULT[0]


def _layer(record: BinaryRecord, cap: int) -> DecodedLayer:
    index = record.reference
    text = record.decoded_string
    container = record.file_type in _CONTAINER_TYPES
    return DecodedLayer(
        depth=index.count(".") + 1,
        index=index,
        encoding=record.file_type if container and record.file_type else "base64",
        file_type=None if container else record.file_type,
        file_name=record.file_name,
        encoding_type=record.encoding_type,
        size=len(record.input_bytes),
        md5=record.md5,
        sha256=record.sha256,
        text=None if text is None else text[:cap],
    )


_DEFAULT_SETTINGS = ObservablesSettings()


def analyze_text(
    text: str, *, extractor: IocExtractor | None = None, settings: ObservablesSettings | None = None
) -> TextAnalysis:
    """Extract IoCs from ``text`` and from every base64/compressed layer decoded from it.

    Args:
        text: a command line, message or any other text.
        extractor: the IoC extractor to use (a shared default instance when None).
        settings: analysis settings (defaults when None).

    Returns:
        :class:`TextAnalysis` with sorted IoCs, decoded layers and limit flags.
    """
    cfg = settings or _DEFAULT_SETTINGS
    ext = extractor or _default_extractor()
    analysis = TextAnalysis()
    if not text:
        return analysis
    result = ext.extract_text(text, cfg.ioc_types, cfg.include_paths, cfg.ignore_tlds)
    truncated = result.truncated
    found = result.iocs
    if cfg.decode_base64 and _may_hold_base64(text, cfg.base64.min_length):
        unpacked = unpack_text(text, settings=cfg.base64)
        analysis.decode_limits = list(unpacked.limits_hit)
        found = {ioc_type: set(values) for ioc_type, values in found.items()}
        for record in unpacked.records:
            analysis.layers.append(_layer(record, cfg.max_layer_text_chars))
            if record.decoded_string:
                layer = ext.extract_text(record.decoded_string, cfg.ioc_types, cfg.include_paths, cfg.ignore_tlds)
                truncated = truncated or layer.truncated
                for ioc_type, values in layer.iocs.items():
                    bucket = found.get(ioc_type)
                    if bucket is None:
                        found[ioc_type] = set(values)
                    else:
                        bucket.update(values)
    analysis.truncated = truncated
    if found:
        analysis.iocs = {ioc_type: sorted(values) for ioc_type, values in sorted(found.items())}
    return analysis


def _merge(target: dict[str, Any], key: str, values: Iterable[str]) -> None:
    new = set(values)
    if not new:
        return
    existing = target.get(key) or []
    target[key] = sorted(set(existing) | new)


class _Summary(NamedTuple):
    """What :func:`annotate_event` takes from the analysis of one text (shared, never mutated)."""

    iocs: tuple[tuple[str, tuple[str, ...]], ...]
    layers: tuple[dict[str, Any], ...]
    truncated: bool
    limits: tuple[str, ...]


_EMPTY = _Summary((), (), False, ())
# Texts repeat a lot in a stream (audit messages are templated, cron and daemons run the same commands):
# the analysis of short texts is remembered per extractor, for the default settings only.
_MEMO_MAX_ENTRIES = 4096
_MEMO_MAX_TEXT = 2048
_MEMO_MAX_LAYER_TEXT = 8192


def _summarize(analysis: TextAnalysis) -> _Summary:
    if not analysis.iocs and not analysis.layers and not analysis.truncated and not analysis.decode_limits:
        return _EMPTY
    return _Summary(
        tuple((ioc_type, tuple(values)) for ioc_type, values in analysis.iocs.items()),
        tuple(layer.to_dict() for layer in analysis.layers),
        analysis.truncated,
        tuple(analysis.decode_limits),
    )


def _analysis_memo(extractor: IocExtractor | None, settings: ObservablesSettings | None) -> dict[str, object] | None:
    """The extractor's memo of analysed texts, or None when settings differ from the defaults (no memo)."""
    if settings is not None and settings != _DEFAULT_SETTINGS:
        return None
    return (extractor or _default_extractor()).analysis_memo()


def _summary(
    text: str, extractor: IocExtractor | None, settings: ObservablesSettings | None, memo: dict[str, object] | None
) -> _Summary:
    if memo is None:
        return _summarize(analyze_text(text, extractor=extractor, settings=settings))
    cached = memo.get(text)
    if cached is not None:
        return cast(_Summary, cached)
    summary = _summarize(analyze_text(text, extractor=extractor or _default_extractor()))
    if (
        len(text) <= _MEMO_MAX_TEXT
        and sum(len(layer.get("text") or "") for layer in summary.layers) <= _MEMO_MAX_LAYER_TEXT
    ):
        if len(memo) >= _MEMO_MAX_ENTRIES:
            memo.pop(next(iter(memo)))
        memo[text] = summary
    return summary


def _cap_event(
    layers: list[dict[str, Any]], iocs: dict[str, set[str]] | None, limits: list[str], cfg: ObservablesSettings
) -> None:
    """Hold one event's decoded layers and IoC text to the settings' caps, naming each cut in ``limits``."""
    if len(layers) > cfg.max_layers_per_event:
        del layers[cfg.max_layers_per_event :]
        limits.append("max_layers_per_event")
    if iocs and _cap_iocs(iocs, cfg.max_ioc_chars_per_event):
        limits.append("max_ioc_chars_per_event")


def _cap_iocs(iocs: dict[str, set[str]], budget: int) -> bool:
    """Keep IoC values within ``budget`` characters in all (shortest first, so the most distinct values
    survive); True when some were dropped."""
    total = sum(len(value) for values in iocs.values() for value in values)
    if total <= budget:
        return False
    ranked = sorted((len(value), ioc_type, value) for ioc_type, values in iocs.items() for value in values)
    kept: dict[str, set[str]] = {}
    for size, ioc_type, value in ranked:
        if size > budget:
            break
        budget -= size
        kept.setdefault(ioc_type, set()).add(value)
    iocs.clear()
    iocs.update(kept)
    return True


def annotate_event(
    doc: dict[str, Any],
    analysis_fields: Iterable[str] = DEFAULT_ANALYSIS_FIELDS,
    *,
    extractor: IocExtractor | None = None,
    settings: ObservablesSettings | None = None,
) -> None:
    """Analyse text fields of an ECS document and add ``secstream.iocs``/``decoded`` and ``related.*``.

    Nothing is added when no field yields anything. List-valued fields are joined with spaces.
    With the default settings, the analysis of texts up to 2048 characters is remembered by the
    extractor (4096 texts, oldest dropped first), so a repeated command line or message costs a look-up.

    Args:
        doc: the ECS event document (modified in place).
        analysis_fields: dotted field names to analyse (``process.command_line``, ``message``...).
        extractor: the IoC extractor (a shared default instance when None).
        settings: analysis settings.
    """
    iocs: dict[str, set[str]] | None = None
    layers: list[dict[str, Any]] = []
    truncated = False
    limits: list[str] = []
    seen: set[str] = set()
    memo = _analysis_memo(extractor, settings)  # resolved once per document, not per field
    for name in analysis_fields:
        value = get_path(doc, name)
        if isinstance(value, list):
            value = " ".join(str(item) for item in value)
        if not isinstance(value, str) or not value or value in seen:
            continue
        seen.add(value)
        summary = _summary(value, extractor, settings, memo)
        if summary is _EMPTY:
            continue
        if summary.iocs:
            if iocs is None:
                iocs = {}
            for ioc_type, values in summary.iocs:
                bucket = iocs.get(ioc_type)
                if bucket is None:
                    iocs[ioc_type] = set(values)
                else:
                    bucket.update(values)
        for layer in summary.layers:
            entry = dict(layer)
            entry["field"] = name
            layers.append(entry)
        truncated = truncated or summary.truncated
        limits.extend(limit for limit in summary.limits if limit not in limits)
    _cap_event(layers, iocs, limits, settings or _DEFAULT_SETTINGS)
    if not iocs and not layers and not truncated and not limits:
        return
    found = iocs or {}
    sec = doc.setdefault("secstream", {})
    if found:
        sec["iocs"] = {ioc_type: sorted(values) for ioc_type, values in sorted(found.items())}
    if layers:
        sec["decoded"] = layers
    if truncated or limits:
        flags: dict[str, Any] = {}
        if truncated:
            flags["truncated"] = True
        if limits:
            flags["decode_limits"] = limits
        sec["analysis"] = flags
    related = doc.setdefault("related", {})
    _merge(related, "ip", found.get("ipv4", set()) | found.get("ipv6", set()))
    _merge(related, "hosts", found.get("dns", set()))
    hashes: set[str] = set()
    for hash_type in _HASH_TYPES:
        hashes.update(value.lower() for value in found.get(hash_type, set()))
    hashes.update(layer["sha256"] for layer in layers if layer["encoding_type"] == "binary")
    _merge(related, "hash", hashes)
    if not related:
        del doc["related"]
