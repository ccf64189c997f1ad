"""What every upstream client shares: one request with a header timeout, errors, headers.

Both the registry client and the Maven client go through `send_request`, so
an unreachable or silent upstream always ends in the same `UpstreamError`
(reason ``connect`` or ``timeout``) within the header timeout.
"""

from __future__ import annotations

import base64

from hyperlink import EncodedURL
from twisted.internet import defer
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH


class UpstreamError(Exception):
    """The upstream could not be reached or answered with an error we cannot use."""

    def __init__(self, message: str, reason: str = "error", code: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.code = code


class UpstreamNotFound(Exception):
    """The upstream (for OCI: every upstream that serves the repository) answered 404 or 410."""


class NotModified(Exception):
    """The upstream confirmed our copy (304)."""


class _IPLiteralURL(EncodedURL):
    """A URL whose host is an IPv6 literal (``http://[::1]:5000``), as treq can send it.

    treq turns every URL into a URI with hyperlink's ``to_uri``, which
    IDNA-encodes the host and refuses ``::1`` (``InvalidCodepoint``).  An IP
    literal needs no encoding: the rest of the URL is encoded as usual and
    the host kept.  (Twisted's Agent then connects to it and brackets it in
    the Host header.)
    """

    def to_uri(self):
        return EncodedURL.to_uri(self.replace(host="ip-literal.invalid")).replace(host=self.host)


def request_url(url: str) -> str | EncodedURL:
    """``url`` in the form treq can request: the text itself, or for an IPv6 host a `_IPLiteralURL`."""
    if "://[" not in url:
        return url
    return _IPLiteralURL.from_text(url)


def basic_authorization(username: str | None, password: str | None) -> bytes | None:
    """The Basic header value for configured upstream credentials, or None."""
    if username is None:
        return None
    return b"Basic " + base64.b64encode(f"{username}:{password or ''}".encode())


async def send_request(
    http, method: str, url: str, headers: Headers, *, timeout: float, clock, who: str, allow_redirects: bool = True
):
    """One unbuffered request; raises UpstreamError when no headers arrive in ``timeout`` seconds."""
    try:
        return await http.request(
            method,
            request_url(url),
            headers=headers,
            unbuffered=True,
            timeout=timeout,
            reactor=clock,
            allow_redirects=allow_redirects,
        )
    except defer.CancelledError:
        raise UpstreamError(f"{who}: no answer within {timeout:g}s", "timeout") from None
    except Exception as e:
        raise UpstreamError(f"{who}: {e.__class__.__name__}: {e}", "connect") from None


def response_length(response) -> int | None:
    length = response.length
    return None if length is UNKNOWN_LENGTH else int(length)


def header(response, name: str) -> str | None:
    """The last value of a response header as text, or None."""
    values = response.headers.getRawHeaders(name)
    if not values:
        return None
    value = values[-1]
    return value.decode("latin-1") if isinstance(value, bytes) else value
