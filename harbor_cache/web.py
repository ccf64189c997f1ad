"""The HTTP site: one root resource over the fronts, CORS, errors, access log, health.

Every front is a Klein app whose routes carry their full paths (``/v2/...``,
``/api/v1/...``); the root resource only picks which app sees the request.
Everything a client can get wrong or we can fail at ends in the seed's
``{"errors": [...]}`` body, never in a Twisted HTML page.
"""

from __future__ import annotations

import json
import time
from typing import Any

from klein import Klein
from twisted.logger import Logger
from twisted.web import http, resource, server
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as WerkzeugNotFound

from . import __version__
from .errors import HarborError, error_body

log = Logger()
access_log = Logger(namespace="harbor_cache.access")

CORS_HEADERS = {
    b"Access-Control-Allow-Origin": b"*",
    b"Access-Control-Expose-Headers": b"Docker-Content-Digest, Docker-Upload-UUID, Location, Range, "
    b"Content-Range, WWW-Authenticate, Link, Warning",
}
PREFLIGHT_HEADERS = {
    b"Access-Control-Allow-Methods": b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    b"Access-Control-Allow-Headers": b"Authorization, Content-Type, Range, Accept, Content-Range, "
    b"If-None-Match, If-Modified-Since",
    b"Access-Control-Max-Age": b"86400",
}


def json_response(request, obj: Any, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(obj).encode()


def write_error(request, status: int, code: str, message: str, detail: Any = None,
                headers: dict[str, str] | None = None) -> bytes:
    """Set status and headers for an error; returns the body (empty for HEAD)."""
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode(), value.encode())
    body = error_body(code, message, detail)
    if request.method == b"HEAD":
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b""
    return body


def crash_response(request, failure) -> bytes | None:
    """Log an unexpected error; answer 500 in the error format, or abort if the body already started.

    Returns the body to write, or None when the connection was aborted.
    """
    log.failure("unhandled error on {method} {path}", failure,
                method=request.method.decode("latin-1"), path=request.path.decode("latin-1"))
    if request.startedWriting:
        request.transport.abortConnection()
        return None
    body = write_error(request, 500, "INTERNAL_ERROR", "internal server error")
    if request.method != b"HEAD":  # (write_error already set it for HEAD)
        request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


def install_error_handlers(app: Klein) -> None:
    """Map our errors, routing misses and crashes onto the seed's error format."""

    @app.handle_errors(HarborError)
    def _harbor_error(self, request, failure):
        e = failure.value
        return write_error(request, e.status, e.code, e.message, e.detail, e.headers)

    @app.handle_errors(WerkzeugNotFound)
    def _not_found(self, request, failure):
        return write_error(request, 404, "NOT_FOUND", "no such endpoint", request.path.decode("latin-1"))

    @app.handle_errors(MethodNotAllowed)
    def _not_allowed(self, request, failure):
        allowed = ", ".join(failure.value.valid_methods or [])
        return write_error(request, 405, "UNSUPPORTED", "method not allowed", headers={"Allow": allowed})

    @app.handle_errors(HTTPException)
    def _http_exception(self, request, failure):
        e = failure.value
        return write_error(request, e.code or 400, "BAD_REQUEST", e.description or "bad request")

    @app.handle_errors(Exception)
    def _crash(self, request, failure):
        return crash_response(request, failure)


class HarborRequest(server.Request):
    """Adds CORS to every response, answers preflights, remembers timing and cache status."""

    cache_status: str | None = None
    front: str = "site"

    def process(self):
        self.started_at = time.monotonic()
        for name, value in CORS_HEADERS.items():
            self.setHeader(name, value)
        if self.method == b"OPTIONS":
            for name, value in PREFLIGHT_HEADERS.items():
                self.setHeader(name, value)
            self.setResponseCode(204)
            self.finish()
            return
        super().process()

    def processingFailed(self, reason):
        body = crash_response(self, reason)
        if body is not None:
            self.write(body)
            self.finish()
        return reason

    def connectionLost(self, reason):
        if not self.finished and hasattr(self, "started_at"):
            self.channel_lost = True
            site = getattr(self, "site", None)
            if site is not None:
                site.log(self)
        super().connectionLost(reason)


class HarborChannel(http.HTTPChannel):
    """Answers a TLS handshake on the plain-HTTP port at once, as Go servers do.

    Clients such as skopeo and podman try HTTPS first; a ClientHello has no
    line ending, so the HTTP parser would wait for one until the client times
    out (10 s per pull).  A plain 400 makes them fall back to HTTP at once.
    """

    _first = True

    def dataReceived(self, data):
        if self._first:
            self._first = False
            if data[:1] == b"\x16":
                self.transport.write(
                    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
                )
                self.transport.loseConnection()
                return
        super().dataReceived(data)


class HarborSite(server.Site):
    """The site: our request class, and an access line (plus metrics) per request."""

    requestFactory = HarborRequest
    protocol = HarborChannel

    def __init__(self, root, metrics, **kw):
        super().__init__(root, **kw)
        self.metrics = metrics

    def log(self, request):
        duration = time.monotonic() - getattr(request, "started_at", time.monotonic())
        status = "aborted" if getattr(request, "channel_lost", False) else str(request.code)
        self.metrics.requests.inc()
        self.metrics.responses.labels(request.method.decode("latin-1"), status).inc()
        self.metrics.request_seconds.labels(request.front).observe(duration)
        access_log.info(
            "{method} {path} {status} {bytes} {duration_ms:.1f}ms {cache_status}",
            method=request.method.decode("latin-1"),
            path=request.uri.decode("latin-1"),
            status=status,
            bytes=request.sentLength,
            duration_ms=duration * 1000,
            cache_status=request.cache_status or "-",
        )


class NotFoundResource(resource.Resource):
    isLeaf = True

    def render(self, request):
        return write_error(request, 404, "NOT_FOUND", "no such endpoint", request.path.decode("latin-1"))


class RedirectToUI(resource.Resource):
    isLeaf = True

    def render(self, request):
        request.setResponseCode(302)
        request.setHeader(b"Location", b"/ui/")
        return b""


class Root(resource.Resource):
    """Picks the front for the first path segment; Klein fronts see the whole path."""

    def __init__(self):
        super().__init__()
        self._mounts: dict[bytes, resource.Resource] = {}
        self._plain: dict[bytes, resource.Resource] = {}

    def mount(self, segment: bytes, res: resource.Resource) -> None:
        """Route /segment/... to a Klein resource whose routes include /segment."""
        self._mounts[segment] = res

    def put(self, segment: bytes, res: resource.Resource) -> None:
        """Route /segment/... to an ordinary Twisted resource (static files)."""
        self._plain[segment] = res

    def getChild(self, path, request):
        if path in self._mounts:
            request.postpath.insert(0, request.prepath.pop())
            return self._mounts[path]
        if path in self._plain:
            return self._plain[path]
        if path == b"" and not request.postpath:
            return RedirectToUI()
        return NotFoundResource()


class SiteFront:
    """/health and /healthz (/metrics is prometheus_client's own MetricsResource)."""

    app = Klein()
    install_error_handlers(app)

    def __init__(self, index, storage, metrics):
        self.index = index
        self.storage = storage
        self.metrics = metrics

    @app.route("/health", methods=["GET", "HEAD"])
    @app.route("/healthz", methods=["GET", "HEAD"])
    async def health(self, request):
        self.metrics.health_checks.inc()
        problems = []
        try:
            ok = await self.index.ping()
            if not ok:
                problems.append("index")
        except Exception:
            problems.append("index")
        if not self.storage.usable():
            problems.append("data_dir")
        if problems:
            body = json_response(request, {"status": "degraded", "version": __version__, "problems": problems}, 503)
        else:
            body = json_response(request, {"status": "healthy", "version": __version__})
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b"" if request.method == b"HEAD" else body
