"""The site's client connections: how many are open, from which address, and which still owe headers.

Two limits (``[limits]``, docs/security.md) keep one client, or a few, from
locking everyone else out by holding connections without finishing a request:

* ``max_connections_per_address``: a new connection from an address that
  already has this many open is refused (503).
* ``max_connections``: at this many, a newcomer first takes the place of the
  connection that has waited longest for the headers of its next request (a
  client trickling its headers, or an idle kept-alive connection); only when
  every connection is busy in a request is the newcomer refused (503).

`http.site.HarborSite` asks `refusal` for each new connection; its channels
report when they open and close and when they start and stop owing headers.
"""

from __future__ import annotations

from typing import Protocol

from harbor_cache.http.client_limits import ClientLimits


class Sheddable(Protocol):
    def shed(self) -> None:
        """Close at once to make room (the connection stops counting now: `ConnectionTable.closed`)."""


class ConnectionTable:
    def __init__(self, limits: ClientLimits):
        self.limits = limits
        self.open = 0
        self.by_address: dict[str, int] = {}
        # connections owing headers, in the order they began waiting (dicts keep insertion order): oldest first
        self._waiting: dict[Sheddable, None] = {}

    def refusal(self, host: str | None) -> tuple[str, int, str] | None:
        """None to admit a new connection from ``host`` (shedding the longest waiter at the cap), else the
        ``(setting, limit, message)`` its 503 names."""
        limits = self.limits
        if host is not None and self.by_address.get(host, 0) >= limits.max_connections_per_address:
            return (
                "max_connections_per_address",
                limits.max_connections_per_address,
                "too many open connections from your address",
            )
        if self.open >= limits.max_connections and not self._shed_one():
            return "max_connections", limits.max_connections, "too many open connections"
        return None

    def _shed_one(self) -> bool:
        conn = next(iter(self._waiting), None)
        if conn is None:
            return False
        del self._waiting[conn]
        conn.shed()
        return True

    def opened(self, host: str | None) -> None:
        self.open += 1
        if host is not None:
            self.by_address[host] = self.by_address.get(host, 0) + 1

    def closed(self, conn: Sheddable, host: str | None) -> None:
        self.open -= 1
        self._waiting.pop(conn, None)
        if host is not None:
            n = self.by_address.get(host, 0) - 1
            if n > 0:
                self.by_address[host] = n
            else:
                self.by_address.pop(host, None)

    def waiting(self, conn: Sheddable) -> None:
        """``conn`` now owes the headers of a request: the newest waiter (shed last)."""
        self._waiting.pop(conn, None)
        self._waiting[conn] = None

    def busy(self, conn: Sheddable) -> None:
        """``conn`` has its headers (or is closing): never shed."""
        self._waiting.pop(conn, None)
