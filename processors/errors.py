"""The secstream error tree.

::

    SecstreamError                      base of every error a driver may catch per record
    ├── ParseError                      a raw line is not what its parser expects
    ├── CoalesceError                   an audit record cannot join an event
    │   ├── DuplicateRecordError        the same record was seen twice
    │   └── OrphanEndOfEventError       an EOE arrived for an event that is not in flight
    ├── DecodeError                     a payload could not be decoded within the limits
    ├── EnrichmentError                 a lookup failed (the event is still emitted)
    │   ├── ProviderTimeoutError
    │   ├── RateLimitedError
    │   └── ProviderUnavailableError    circuit open or provider down
    ├── ConfigError                     a setting is unknown or has a bad value
    └── MsticpyException                raised by the msticpy-compatible batch API where msticpy raises it

Each error carries what a dead letter needs: the raw input (when there is one), the host and the reason.
Drivers catch :class:`SecstreamError` per record and emit ``event.kind: "pipeline_error"`` with
``event.original``; any other exception is a bug and fails loudly.
"""

from __future__ import annotations

import sys
from typing import Any, Self, TypeVar

__all__ = [
    "CoalesceError",
    "ConfigError",
    "DecodeError",
    "DuplicateRecordError",
    "EnrichmentError",
    "MsticpyException",
    "OrphanEndOfEventError",
    "ParseError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "SecstreamError",
]


class SecstreamError(Exception):
    """Base of all errors that describe bad input or a failed lookup, never a bug.

    Args:
        reason: a short human-readable reason.
        raw: the original input (text or bytes) that caused it, if any.
        host: the host the input came from, if known.
    """

    def __init__(self, reason: str, *, raw: str | bytes | None = None, host: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw
        self.host = host


class ParseError(SecstreamError):
    """A raw line is not a record of the expected format."""


class CoalesceError(SecstreamError):
    """An audit record cannot be added to an event."""


class DuplicateRecordError(CoalesceError):
    """The same audit record (same event, type and content) was already buffered."""


class OrphanEndOfEventError(CoalesceError):
    """An EOE record arrived for an event that is not in flight."""


class DecodeError(SecstreamError):
    """A payload could not be decoded within the configured limits."""


class EnrichmentError(SecstreamError):
    """A lookup failed; the event is emitted anyway with the failure recorded.

    Args:
        provider: the provider's name.
    """

    def __init__(self, reason: str, *, provider: str = "", raw: str | bytes | None = None) -> None:
        super().__init__(reason, raw=raw)
        self.provider = provider


class ProviderTimeoutError(EnrichmentError):
    """A provider did not answer within its timeout."""


class RateLimitedError(EnrichmentError):
    """A provider's rate limit or daily quota is exhausted."""


class ProviderUnavailableError(EnrichmentError):
    """A provider is down or its circuit breaker is open."""


class ConfigError(SecstreamError):
    """A configuration key is unknown or has a bad value.

    Args:
        key: the dotted name of the offending key.
    """

    def __init__(self, reason: str, *, key: str = "") -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key


class MsticpyException(SecstreamError):
    """Raised by the msticpy-compatible API in the cases where msticpy raises ``MsticpyException``.

    When msticpy is imported in the same process, the raised object is also an instance of
    ``msticpy.common.exceptions.MsticpyException``, so msticpy's ``except`` clauses (and
    ``pytest.raises``) catch it. The check is made when the exception is created and never imports
    msticpy: code that catches msticpy's class has imported it before anything can raise.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        return super().__new__(_with_msticpy_base(cls), *args, **kwargs)


_MSTICPY_COMPATIBLE: dict[type, type] = {}
_T = TypeVar("_T", bound=type)


def _with_msticpy_base(cls: _T) -> _T:
    """``cls`` or, when msticpy's exception module is loaded, a subclass of ``cls`` and of msticpy's class."""
    theirs = getattr(sys.modules.get("msticpy.common.exceptions"), "MsticpyException", None)
    if not isinstance(theirs, type) or not issubclass(theirs, Exception) or issubclass(cls, theirs):
        return cls
    derived = _MSTICPY_COMPATIBLE.get(cls)
    if derived is None:
        # same name and module, so tracebacks and reprs read as secstream's class
        derived = type(
            cls.__name__,
            (cls, theirs),
            {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                # pickled as ``cls``, which derives again when it is loaded
                "__reduce__": lambda self: (cls, self.args, self.__dict__),
            },
        )
        _MSTICPY_COMPATIBLE[cls] = derived
    return derived  # type: ignore[return-value]
