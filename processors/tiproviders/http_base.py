"""msticpy 1.5's module name for the HTTP provider base (same classes as ``http_provider``)."""

from processors.tiproviders.http_provider import HttpProvider, IoCLookupParams

__all__ = ["HttpProvider", "IoCLookupParams"]
