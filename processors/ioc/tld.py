"""Offline top-level-domain checks over the Public Suffix List shipped with ``publicsuffixlist``.

The list is loaded once, lazily, on first use (about 0.1 s) and never fetched from the network
(msticpy's ``tldextract`` fetches it on first use and hangs offline). Lookups of the last label are
cached, so a check costs a dict look-up after warm-up.
"""

from __future__ import annotations

import functools
import threading

from publicsuffixlist import PublicSuffixList

__all__ = ["has_known_tld", "public_suffix_list"]

_LOCK = threading.Lock()
_PSL: list[PublicSuffixList] = []


def public_suffix_list() -> PublicSuffixList:
    """Return the shared, read-only Public Suffix List (loaded on first call, unknown TLDs rejected).

    Returns:
        The ``PublicSuffixList`` instance built with ``accept_unknown=False``.
    """
    if not _PSL:
        with _LOCK:
            if not _PSL:
                _PSL.append(PublicSuffixList(accept_unknown=False))
    return _PSL[0]


@functools.lru_cache(maxsize=4096)
def _tld_is_public(tld: str) -> bool:
    return bool(public_suffix_list().is_public(tld))


def has_known_tld(domain: str) -> bool:
    """Return True when the last label of ``domain`` is a top-level domain in the Public Suffix List.

    Args:
        domain: a host name such as ``www.example.co.uk`` (case-insensitive, a trailing dot is ignored).

    Returns:
        True if the TLD (for example ``uk``, ``com``, ``xn--p1ai``) is listed.
    """
    name = domain.rstrip(".").lower()
    if "." not in name:
        return False
    return _tld_is_public(name.rsplit(".", 1)[1])
