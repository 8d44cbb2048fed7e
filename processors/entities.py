"""Entity classes with msticpy's field names: ``IpAddress``, ``GeoLocation`` and ``Host``.

They are plain dataclasses: ``properties`` gives the public fields as a dict (msticpy's
``Entity.properties``), and each has msticpy's ``description_str``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

__all__ = ["Entity", "GeoLocation", "Host", "IpAddress"]


@dataclass
class Entity:
    """Base of the entities: a type name, a timestamp and free-form additional data."""

    TimeGenerated: datetime | None = field(default=None, kw_only=True)
    AdditionalData: dict[str, Any] = field(default_factory=dict, kw_only=True)

    @property
    def Type(self) -> str:  # msticpy's name
        return type(self).__name__.lower()

    @property
    def properties(self) -> dict[str, Any]:
        """The public fields and their values, plus ``Type``."""
        props = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        props["Type"] = self.Type
        return props

    @property
    def description_str(self) -> str:
        return self.Type


@dataclass
class GeoLocation(Entity):
    """A geographic location (msticpy ``GeoLocation``; ``CountryOrRegionName`` is an alias of ``CountryName``)."""

    CountryCode: str | None = None
    CountryName: str | None = None
    State: str | None = None
    City: str | None = None
    Longitude: float | None = None
    Latitude: float | None = None
    Asn: str | None = None

    ID_PROPERTIES = ("Longitude", "Latitude", "City", "State", "CountryCode")

    @property
    def CountryOrRegionName(self) -> str | None:  # msticpy's name (v2+)
        return self.CountryName

    @property
    def description_str(self) -> str:
        return f"{self.CountryCode}; {self.State}; {self.City}"


@dataclass
class IpAddress(Entity):
    """An IP address with its location and threat-intel findings."""

    Address: str = ""
    Location: GeoLocation | None = None
    ThreatIntelligence: list[Any] = field(default_factory=list)

    @property
    def ip_address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The address as an ``ipaddress`` object, or None if it is not a valid address."""
        try:
            return ipaddress.ip_address(self.Address)
        except ValueError:
            return None

    @property
    def description_str(self) -> str:
        code = self.Location.CountryCode if self.Location else None
        return f"{self.Address} - {code}"


@dataclass
class Host(Entity):
    """A host, as built by ``create_host_record`` (msticpy field names, including its ``OSVMajorersion``)."""

    HostName: str | None = None
    DnsDomain: str | None = None
    NTDomain: str | None = None
    OSType: str | None = None
    OSName: str | None = None
    OSVMajorVersion: str | None = None
    OSVMinorVersion: str | None = None
    SourceComputerId: str | None = None
    ComputerEnvironment: str | None = None
    OmsSolutions: list[str] = field(default_factory=list)
    VMUUID: str | None = None
    Environment: str | None = None
    Applications: list[str] = field(default_factory=list)
    IPAddress: IpAddress | None = None
    private_ips: list[IpAddress] = field(default_factory=list)
    public_ips: list[IpAddress] = field(default_factory=list)

    @property
    def OSVMajorersion(self) -> str | None:  # msticpy's (misspelt) name, kept for compatibility
        return self.OSVMajorVersion

    @property
    def computer(self) -> str | None:
        return self.HostName

    @property
    def description_str(self) -> str:
        return f"{self.HostName} ({self.OSType})"
