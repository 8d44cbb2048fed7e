"""msticpy's DataFrame accessors ``df.mp_ioc`` and ``df.mp_b64``.

They are defined beside what they wrap (:mod:`processors.iocextract`, :mod:`processors.base64unpack`),
as in msticpy, and registered on :class:`polars.DataFrame` when those modules are imported::

    import processors.accessors  # noqa: F401
    iocs = df.mp_ioc.extract(columns=["CommandLine"])
    decoded = df.mp_b64.extract(column="CommandLine")

Differences from msticpy: the namespaces live on polars DataFrames (msticpy registered pandas
accessors). A pandas user can call :func:`register_pandas_accessors` to get ``df.mp_ioc`` /
``df.mp_b64`` on pandas DataFrames too; the accessors return a frame of the type they are called on.
"""

from __future__ import annotations

import importlib

from processors.base64unpack import B64ExtractAccessor
from processors.iocextract import IoCExtractAccessor

__all__ = ["B64ExtractAccessor", "IoCExtractAccessor", "register_pandas_accessors"]


def register_pandas_accessors() -> bool:
    """Register ``mp_ioc`` and ``mp_b64`` on pandas DataFrames too (if pandas is installed).

    Do not call this in a process that also imports msticpy, which registers accessors of the same
    names.

    Returns:
        True if pandas is available and the accessors are registered.
    """
    try:
        pandas_ext = importlib.import_module("pandas.api.extensions")
    except ImportError:
        return False
    pandas_ext.register_dataframe_accessor("mp_ioc")(IoCExtractAccessor)
    pandas_ext.register_dataframe_accessor("mp_b64")(B64ExtractAccessor)
    return True
