"""Limits on what one HTTP client may cost us: body sizes, slowness, connections.

Each is a ``[limits]`` key of the config file (see docs/security.md for what a
client sees when it hits one).  The channel and request classes (`http.channel`, `http.request`)
enforce them.  The numbers are settings, so `ClientLimits` and its bounds are
defined in `settings.client_limits` (settings/ imports no layer) and only
re-exported here for the shell; this module adds the raw error reply used
when there is no request object to answer through.
"""

from __future__ import annotations

from harbor_cache.errors import error_body
from harbor_cache.settings.client_limits import LIMIT_KEYS, ClientLimits

__all__ = ["LIMIT_KEYS", "ClientLimits", "raw_error"]


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
