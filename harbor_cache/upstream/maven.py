"""One upstream Maven repository: plain HTTP GETs under its base URL.

A Maven repository is a directory of files, so the client is small: one
request per path, Basic credentials when the repository is configured with
them (private upstreams), treq with ``unbuffered=True`` so bodies stream into
a temp file, and a timeout on the wait for headers (the idle watchdog in
`upstream.body` covers the body).  Paths arrive already validated by
`maven.paths.normalize_artifact_path` and are re-quoted here, so what goes on
the wire is exactly the file that was asked for.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import treq
from twisted.web.http_headers import Headers

from ..config import MavenRepositoryConfig
from .body import discard_body
from .http import UpstreamError, basic_authorization, header, response_length, send_request

# Characters left as they are in the URL path; everything else is percent-encoded.
# Not ";": some servers (Tomcat) read what follows it as path parameters.
_SAFE = "/-._~!$&'()*+,=:@"
MAX_CHECKSUM_BYTES = 1024
_HEX_RE = re.compile(r"[0-9a-fA-F]+")


class MavenUpstream:
    """Talks to one upstream Maven repository (``config.url`` ends with ``/``)."""

    def __init__(self, config: MavenRepositoryConfig, http, clock, header_timeout: float = 30.0):
        self.config = config
        self.id = config.id
        self.base = config.url if config.url.endswith("/") else config.url + "/"
        self._http = http
        self._clock = clock
        self._header_timeout = header_timeout

    def url_for(self, path: str) -> str:
        return self.base + quote(path, safe=_SAFE)

    def _headers(self, extra: dict[bytes, bytes] | None) -> Headers:
        headers: dict[bytes, list[bytes]] = {b"User-Agent": [b"harbor-cache/0.1"]}
        basic = basic_authorization(self.config.username, self.config.password)
        if basic is not None:
            headers[b"Authorization"] = [basic]
        for name, value in (extra or {}).items():
            headers[name] = [value]
        return Headers(headers)

    async def request(self, method: str, path: str, headers: dict[bytes, bytes] | None = None):
        """Send one request for ``path``; returns the unbuffered treq response (any status).

        Raises `UpstreamError` (reason ``timeout`` or ``connect``) when the
        upstream cannot be reached or sends no headers in time.
        """
        return await send_request(self._http, method, self.url_for(path), self._headers(headers),
                                  timeout=self._header_timeout, clock=self._clock, who=self.id)

    async def fetch_sha1(self, path: str) -> str | None:
        """The hex SHA-1 that upstream publishes in ``<path>.sha1``, or None when it has none.

        Raises `UpstreamError` when the upstream cannot be asked (the caller
        decides whether an unknown checksum is acceptable).  The file holds
        the hex digest, optionally followed by whitespace and a file name.
        """
        found = await self.fetch_small(path + ".sha1")
        if found is None:
            return None
        return parse_sha1(found[0])

    async def fetch_small(self, path: str, limit: int = MAX_CHECKSUM_BYTES) -> tuple[bytes, str | None] | None:
        """(whole body, Last-Modified header) of a small file (checksums), or None on 404.

        Raises `UpstreamError` for other statuses, bodies over ``limit`` and
        unreachable upstreams.
        """
        response = await self.request("GET", path)
        if response.code == 404:
            await discard_body(response)
            return None
        if response.code != 200:
            await discard_body(response)
            raise UpstreamError(f"{self.id}: {path} answered {response.code}", f"http_{response.code}",
                                response.code)
        length = response_length(response)
        if length is not None and length > limit:
            await discard_body(response)
            raise UpstreamError(f"{self.id}: {path} is over {limit} bytes", "too_large")
        try:
            body = await treq.content(response)
        except Exception as e:
            raise UpstreamError(f"{self.id}: {path}: body failed: {e}", "body") from None
        if len(body) > limit:
            raise UpstreamError(f"{self.id}: {path} is over {limit} bytes", "too_large")
        return body, header(response, "Last-Modified")


def parse_sha1(body: bytes) -> str | None:
    """The 40-hex-digit SHA-1 at the start of a ``.sha1`` file, lower-cased, or None."""
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    first = text.split()[0] if text.split() else ""
    if len(first) == 40 and _HEX_RE.fullmatch(first):
        return first.lower()
    return None
