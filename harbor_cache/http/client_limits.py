"""Limits on what one HTTP client may cost us: body sizes, slowness, connections.

Each is a ``[limits]`` key of the config file (see docs/security.md for what a
client sees when it hits one).  The channel and request classes (`http.channel`, `http.request`)
enforce them; this module only holds the numbers and the raw error reply used
when there is no request object to answer through.
"""

from __future__ import annotations

from dataclasses import dataclass

from harbor_cache.errors import error_body
from harbor_cache.http.request_body import MAX_BODY_BYTES, MAX_UPLOAD_BYTES


@dataclass(frozen=True)
class ClientLimits:
    # Bodies of routes that are not streamed (API JSON, login, token forms) are buffered up to this.
    max_body_bytes: int = MAX_BODY_BYTES
    # One streamed request body (a blob upload request; a Maven deploy) may not exceed this.
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    # From connect (or the end of the previous response) to the last header line.
    header_timeout_seconds: float = 30.0
    # While we are reading a body, at least this many bytes per second, averaged over the window.
    min_body_rate_bytes: int = 1024
    body_rate_window_seconds: float = 30.0
    # Open client connections; at the cap the oldest one still owing its headers is shed for a newcomer,
    # and when none is, the newcomer is answered 503 and closed.
    max_connections: int = 768
    # Open connections from one client address (one more is answered 503): one client cannot take them all.
    max_connections_per_address: int = 256


# (key, type, low, high): the bounds each [limits] key is checked against at start.
LIMIT_KEYS: tuple[tuple[str, type, float, float], ...] = (
    ("max_body_bytes", int, 1024, 1 << 30),
    ("max_upload_bytes", int, 1 << 20, 1 << 50),
    ("header_timeout_seconds", float, 1.0, 3600.0),
    ("min_body_rate_bytes", int, 0, 1 << 30),
    ("body_rate_window_seconds", float, 1.0, 3600.0),
    ("max_connections", int, 1, 1_000_000),
    ("max_connections_per_address", int, 1, 1_000_000),
)


def raw_error(status: int, reason: str, code: str, message: str, detail=None) -> bytes:
    """A whole HTTP/1.1 response in the error format, closing the connection (no request to answer through)."""
    body = error_body(code, message, detail)
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        # (`site.SECURITY_HEADERS`, which every response carries)
        "Content-Security-Policy: default-src 'none'; sandbox\r\nX-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body
