"""One upstream Maven repository: plain HTTP GETs under its base URL.

A Maven repository is a directory of files, so the client is small: one
request per path, Basic credentials when the repository is configured with
them (private upstreams), treq with ``unbuffered=True`` so bodies stream into
a temp file, and a timeout on the wait for headers (the idle watchdog in
`upstream.body` covers the body).  Paths arrive already validated by
`grammar.maven_paths.normalize_artifact_path` and are re-quoted here, so what goes on
the wire is exactly the file that was asked for.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urljoin, urlsplit

from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from harbor_cache.limited_body import BodyTooLarge
from harbor_cache.settings.startup import MavenRepositoryConfig
from harbor_cache.upstream.body import discard_body, read_body_limited
from harbor_cache.upstream.http import UpstreamError, basic_authorization, header, response_length, send_request

# Characters left as they are in the URL path; everything else is percent-encoded.
# Not ";": some servers (Tomcat) read what follows it as path parameters.
_SAFE = "/-._~!$&'()*+,=:@"
MAX_CHECKSUM_BYTES = 1024
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_HEX_RE = re.compile(r"[0-9a-fA-F]+")


class NotAFile(UpstreamError):
    """The upstream answered with a directory (a redirect to ``path/``) or sent us outside the
    repository: there is no file to serve or store here (the cache answers 404)."""

    def __init__(self, message: str):
        super().__init__(message, "not_a_file", 404)


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

    def _inside(self, url: str) -> bool:
        """Whether ``url`` (absolute, dot segments resolved) names a file under this repository."""
        parts = urlsplit(url)
        bare = url.split("?", 1)[0].split("#", 1)[0]
        return bare.startswith(self.base) and len(bare) > len(self.base) and not parts.path.endswith("/")

    async def request(self, method: str, path: str, headers: dict[bytes, bytes] | None = None) -> IResponse:
        """Send one request for ``path``; returns the unbuffered treq response (any status but 3xx).

        Redirects are followed by hand, and only to files under this
        repository's URL: a redirect to ``path/`` is a directory, one to
        another host or path is outside the repository, and neither is ever
        stored as the file (`NotAFile`). Credentials are only ever sent to the
        repository's own URL. Raises `UpstreamError` (reason ``timeout`` or
        ``connect``) when the upstream cannot be reached or sends no headers
        in time.
        """
        url = self.url_for(path)
        for _ in range(MAX_REDIRECTS + 1):
            response = await send_request(
                self._http,
                method,
                url,
                self._headers(headers),
                timeout=self._header_timeout,
                clock=self._clock,
                who=self.id,
                allow_redirects=False,
            )
            if response.code not in _REDIRECTS:
                return response
            location = header(response, "Location")
            await discard_body(response)
            target = urljoin(url, location.strip()) if location else ""
            if not self._inside(target):
                raise NotAFile(f"{self.id}: {path} redirects to {target[:200]!r}, not to a file of the repository")
            url = target
        raise UpstreamError(f"{self.id}: {path}: more than {MAX_REDIRECTS} redirects", "redirects")

    async def fetch_small(self, path: str, limit: int = MAX_CHECKSUM_BYTES) -> tuple[bytes, str | None] | None:
        """(whole body, Last-Modified header) of a small file (checksums), or None on 404.

        Raises `UpstreamError` for other statuses, bodies over ``limit`` and
        unreachable upstreams.
        """
        try:
            response = await self.request("GET", path)
        except NotAFile:
            return None
        if response.code == 404:
            await discard_body(response)
            return None
        if response.code != 200:
            await discard_body(response)
            raise UpstreamError(f"{self.id}: {path} answered {response.code}", f"http_{response.code}", response.code)
        length = response_length(response)
        if length is not None and length > limit:
            await discard_body(response)
            raise UpstreamError(f"{self.id}: {path} is over {limit} bytes", "too_large")
        try:
            body = await read_body_limited(response, limit)
        except BodyTooLarge:
            raise UpstreamError(f"{self.id}: {path} is over {limit} bytes", "too_large") from None
        except Exception as e:
            raise UpstreamError(f"{self.id}: {path}: body failed: {e}", "body") from None
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
