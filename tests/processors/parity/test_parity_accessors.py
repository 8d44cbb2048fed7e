"""The ``df.mp_ioc`` and ``df.mp_b64`` DataFrame namespaces."""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import processors.accessors as accessors

ENCODED = base64.b64encode(b"powershell -nop -w hidden -c iex(new-object net.webclient)").decode()
TEXT = [
    f"cmd /c echo {ENCODED} | decode",
    "connect to 91.198.174.192 and http://evil.example.com/payload.exe",
]


@pytest.fixture
def frame() -> pl.DataFrame:
    """Two command lines with a base64 payload and IoCs."""
    return pl.DataFrame({"CommandLine": TEXT})


class TestIoCExtractAccessor:
    """df.mp_ioc."""

    def test_extract_matches_extract_df(self, frame: pl.DataFrame) -> None:
        """df.mp_ioc.extract is IoCExtract().extract_df on the same frame."""
        iocextract = pytest.importorskip("processors.iocextract")
        out = frame.mp_ioc.extract(columns=["CommandLine"])
        assert isinstance(out, pl.DataFrame)
        assert_frame_equal(out, iocextract.IoCExtract().extract_df(frame, columns=["CommandLine"]))
        assert "91.198.174.192" in out["Observable"].to_list()

    def test_kwargs_are_passed(self, frame: pl.DataFrame) -> None:
        """Options such as ioc_types reach extract_df."""
        pytest.importorskip("processors.iocextract")
        out = frame.mp_ioc.extract(columns=["CommandLine"], ioc_types=["ipv4"])
        assert set(out["IoCType"].to_list()) == {"ipv4"}

    def test_class_is_registered(self, frame: pl.DataFrame) -> None:
        """The namespace object is msticpy's class name."""
        assert isinstance(frame.mp_ioc, accessors.IoCExtractAccessor)


class TestB64ExtractAccessor:
    """df.mp_b64."""

    def test_extract_matches_unpack_df(self, frame: pl.DataFrame) -> None:
        """df.mp_b64.extract is base64unpack.unpack_df on the same frame and decodes the payload."""
        base64unpack = pytest.importorskip("processors.base64unpack")
        out = frame.mp_b64.extract(column="CommandLine")
        assert_frame_equal(out, base64unpack.unpack_df(frame, column="CommandLine"))
        assert any("powershell" in str(v) for v in out["decoded_string"].to_list())

    def test_pandas_frame_is_accepted(self) -> None:
        """A pandas frame wrapped by the accessor class gives the same rows, as a pandas frame."""
        pd = pytest.importorskip("pandas")
        pytest.importorskip("processors.base64unpack")
        pandas_frame = pd.DataFrame({"CommandLine": TEXT})
        out = accessors.B64ExtractAccessor(pandas_frame).extract(column="CommandLine")
        assert isinstance(out, pd.DataFrame)
        expected = pl.DataFrame({"CommandLine": TEXT}).mp_b64.extract(column="CommandLine")
        assert out.shape == expected.shape
        assert out["decoded_string"].tolist() == expected["decoded_string"].to_list()

    def test_class_is_registered(self, frame: pl.DataFrame) -> None:
        """The namespace object is msticpy's class name."""
        assert isinstance(frame.mp_b64, accessors.B64ExtractAccessor)


class TestPandasRegistration:
    """register_pandas_accessors (run in a fresh interpreter: pandas registration is process-global)."""

    def test_pandas_accessors(self) -> None:
        """After registration, pandas frames have mp_ioc and mp_b64, returning pandas frames."""
        pytest.importorskip("pandas")
        script = textwrap.dedent(
            """
            import pandas as pd, polars as pl
            from processors.accessors import register_pandas_accessors
            assert register_pandas_accessors()
            df = pd.DataFrame({"t": ["see 91.198.174.192"]})
            out = df.mp_ioc.extract(columns=["t"])
            assert isinstance(out, pd.DataFrame), type(out)
            assert "91.198.174.192" in out["Observable"].tolist()
            print("ok")
            """
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
        assert done.stdout.strip() == "ok", done.stderr


class TestIoCPatternConstants:
    """msticpy's IoCExtract.*_REGEX constants exist and are the patterns secstream scans with."""

    @pytest.mark.parametrize(
        ("name", "sample"),
        [
            ("IPV4_REGEX", "10.1.2.3"),
            ("IPV6_REGEX", "2001:db8::1"),
            ("DNS_REGEX", "www.example.com"),
            ("URL_REGEX", "https://example.com/x"),
            ("MD5_REGEX", "d41d8cd98f00b204e9800998ecf8427e"),
            ("SHA1_REGEX", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            ("SHA256_REGEX", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("WINPATH_REGEX", "c:\\windows\\system32\\cmd.exe"),
            ("LXPATH_REGEX", "/usr/bin/curl"),
        ],
    )
    def test_constant_matches_its_type(self, name: str, sample: str) -> None:
        """Each constant compiles in RE2 and finds an indicator of its type."""
        import re2

        from processors.iocextract import IoCExtract

        pattern = re2.compile(getattr(IoCExtract, name), options=_case_insensitive())
        assert pattern.search(sample) is not None


def _case_insensitive() -> object:
    import re2

    options = re2.Options()
    options.case_sensitive = False
    return options
