"""The one-pass prefilter only skips scanners that could not have found anything."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secstream_iocscan import Scanner

from processors.ioc import extract as iocextract
from processors.iocextract import IoCExtract

TOKENS = [
    "http://",
    "hxxps[:]//",
    "fxp://",
    "[.]",
    "(dot)",
    "[at]",
    "../",
    "/usr/",
    "~/",
    "::",
    "fe80::",
    "::ffff:",
    "10.0.0.",
    "256.",
    "example.com",
    "setup.py",
    "a@",
    "%2F",
    "\\\\srv\\",
    "C:\\",
    "d41d8cd98f00b204e9800998ecf8427e",
    "0123456789abcdef0123456789abcdef01234567",
    " ",
    ".",
    ":",
    "/",
    "?q=",
]
texts = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=60).map("".join),
    st.text(alphabet="aef019./:@[]()%\\- xphtAF", max_size=300),
    st.text(max_size=200),
)
EXTRACTORS = [IoCExtract(), IoCExtract(refang=False), IoCExtract(defanged=False)]


# the same patterns without gates: every pattern is searched whatever the text holds
UNGATED = Scanner(iocextract._SCAN_PATTERNS)


class TestPrefilter:
    """Extraction with the prefilter equals extraction that runs every scanner."""

    @settings(max_examples=300, deadline=None)
    @given(texts)
    def test_same_result_as_running_every_scanner(self, text: str) -> None:
        """For all types, paths and TLD modes, the prefiltered result is the full-scan result."""
        with_prefilter = [
            ext.extract_text(text, include_paths=paths, ignore_tlds=tlds).iocs
            for ext in EXTRACTORS
            for paths in (False, True)
            for tlds in (False, True)
        ]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(iocextract, "_SCANNER", UNGATED)
            full = [
                ext.extract_text(text, include_paths=paths, ignore_tlds=tlds).iocs
                for ext in EXTRACTORS
                for paths in (False, True)
                for tlds in (False, True)
            ]
        assert with_prefilter == full

    def test_ordinary_command_line_has_no_candidates(self) -> None:
        """A plain command line without dots, colons, '@', hex runs or backslashes matches no scanner."""
        assert not iocextract._SCANNER.gates_found(b"ls -la --color=auto")
        assert IoCExtract().extract_text("ls -la --color=auto", include_paths=True).iocs == {}

    def test_defanged_text_is_rescanned_after_refanging(self) -> None:
        """Indicators that only appear once refanged (dots hidden as [dot]) are found."""
        result = IoCExtract().extract_text("c2 at evil[dot]example[dot]com and 10(.)1(.)2(.)3").iocs
        assert result == {"dns": {"evil.example.com"}, "ipv4": {"10.1.2.3"}}

    def test_custom_types_run_without_builtin_candidates(self) -> None:
        """A custom type is searched even when no built-in scanner has a candidate."""
        ext = IoCExtract()
        ext.add_ioc_type("ticket", r"TCK-[0-9]+")
        assert ext.extract_text("see TCK-42 now").iocs == {"ticket": {"TCK-42"}}
