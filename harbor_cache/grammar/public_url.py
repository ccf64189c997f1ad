"""The base URL clients reach us at, for token realms and absolute links.

``server.public_url`` wins when it is set. Without it the URL is built from
the request itself, so ``--listen tcp:8080`` with no config file hands out a
realm on port 8080 (a fixed ``localhost:5001`` default sent ``skopeo`` to a
port nobody listened on). ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are
believed only from the addresses in ``server.trusted_proxies``: anyone else
could point other clients' realms at a host of their choosing if a cache in
front stored the answer.

A ``Host`` value that is not a plain host[:port] (quotes, spaces, commas,
anything that could break out of the challenge header) is never echoed: the
address the connection arrived on is used instead.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any, Protocol

# host[:port]: a DNS name or IPv4 address, or a bracketed IPv6 address.
_HOST_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


class RequestView(Protocol):
    """What the URL is built from: the part of a Twisted request it reads (grammar/ imports no Twisted)."""

    def getHeader(self, key: bytes) -> bytes | None: ...  # noqa: N802 (Twisted's name)

    def isSecure(self) -> bool: ...  # noqa: N802

    def getClientAddress(self) -> Any: ...  # noqa: N802 (an IAddress: IPv4/IPv6 have .host, UNIX has not)

    def getHost(self) -> Any: ...  # noqa: N802 (the IPv4Address/IPv6Address the connection arrived on)


def parse_trusted_proxies(values: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Networks from a list of addresses or CIDRs; ValueError names the first bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except (TypeError, ValueError):
            raise ValueError(f"not an IP address or network: {value!r}") from None
    return tuple(networks)


def _first(request: RequestView, name: bytes) -> str | None:
    value = request.getHeader(name)
    if not value:
        return None
    return value.decode("latin-1").split(",", 1)[0].strip() or None


class PublicURL:
    """``for_request(request)`` -> ``scheme://host[:port]`` without a trailing slash."""

    def __init__(self, configured: str | None = None, trusted_proxies: Iterable[str] = ()) -> None:
        self.configured = configured.rstrip("/") if configured else None
        self.trusted = parse_trusted_proxies(trusted_proxies)

    @classmethod
    def of(cls, value: PublicURL | str | None) -> PublicURL:
        return value if isinstance(value, PublicURL) else cls(value or None)

    def _from_trusted_proxy(self, request: RequestView) -> bool:
        if not self.trusted:
            return False
        try:
            peer = ipaddress.ip_address(request.getClientAddress().host)
        except (AttributeError, ValueError):
            return False
        return any(peer in network for network in self.trusted)

    def for_request(self, request: RequestView) -> str:
        if self.configured:
            return self.configured
        scheme = "https" if request.isSecure() else "http"
        host = _first(request, b"Host")
        if self._from_trusted_proxy(request):
            proto = (_first(request, b"X-Forwarded-Proto") or "").lower()
            if proto in ("http", "https"):
                scheme = proto
            host = _first(request, b"X-Forwarded-Host") or host
        if host is None or not _HOST_RE.fullmatch(host):
            address = request.getHost()
            host = f"[{address.host}]:{address.port}" if ":" in address.host else f"{address.host}:{address.port}"
        return f"{scheme}://{host}"
