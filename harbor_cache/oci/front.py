"""The OCI Distribution front (``/v2/``): parses requests, checks access, shapes responses.

It never touches files or SQL: the cache core (`core.oci.cache.OciCache`) decides
what to serve and hands back a source that `storage.RangeProducer` streams.
Paths are parsed by `grammar.oci_paths.parse_v2_path` so names of any depth work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from klein import Klein
from twisted.logger import Logger

from harbor_cache.errors import (
    ManifestUnknown,
    NameUnknown,
    NotFound,
    Unsupported,
)
from harbor_cache.grammar.digests import is_digest_reference
from harbor_cache.grammar.etags import if_none_match_hits
from harbor_cache.grammar.mediatypes import INDEX_TYPES, accepts, served_manifest_type
from harbor_cache.grammar.names import is_valid_repository_name, is_valid_tag
from harbor_cache.grammar.namespaces import UnknownRegistry
from harbor_cache.grammar.oci_paths import V2Route, parse_v2_path
from harbor_cache.http.quick import AnyRequest
from harbor_cache.http.request import HarborRequest
from harbor_cache.http.responses import install_error_handlers
from harbor_cache.http.serving import serve_source
from harbor_cache.oci.checks import check_digest, check_name, scope_name

log = Logger()

API_VERSION_HEADER = (b"Docker-Distribution-API-Version", b"registry/2.0")


# Handles one parsed /v2/ route: (request, route) -> the response body.
RouteHandler = Callable[[Any, V2Route], Awaitable[Any]]


def _acceptable(request: AnyRequest, media_type: str) -> bool:
    """Whether a manifest of ``media_type`` may answer this request by tag (its Accept header, for the type it
    is served as; an index always may)."""
    accept = b",".join(request.requestHeaders.getRawHeaders(b"Accept") or []).decode("latin-1") or None
    return accepts(accept, served_manifest_type(media_type)) or media_type in INDEX_TYPES


class OciFront:
    app = Klein()
    install_error_handlers(app)

    def __init__(self, cache, settings, metrics, policy, extensions: Mapping[str, RouteHandler] | None = None):
        """``policy``: who may do what (`oci.auth.RegistryAuthorizer`); ``extensions``: route kind -> handler
        for everything but GET/HEAD of manifests and blobs (uploads, manifest PUT, deletes, tags, catalog,
        token, referrers): `oci.hosted.HostedFront.routes`."""
        self.cache = cache
        self.settings = settings
        self.metrics = metrics
        self.policy = policy
        self.extensions: Mapping[str, RouteHandler] = extensions or {}

    @app.route("/v2/", methods=["GET", "HEAD"])
    @app.route("/v2", methods=["GET", "HEAD"])
    async def base(self, request: HarborRequest):
        request.front = "oci"
        request.setHeader(*API_VERSION_HEADER)
        await self.policy.authorize(request, None, {"pull"})
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Content-Length", b"2")
        return b"" if request.method == b"HEAD" else b"{}"

    @app.route("/v2/<path:rest>", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
    async def dispatch(self, request: HarborRequest, rest):
        request.front = "oci"
        request.setHeader(*API_VERSION_HEADER)
        route = parse_v2_path(rest)
        if route is None:
            raise NotFound("no such endpoint", request.path.decode("latin-1"))
        method = request.method.decode("ascii")
        if route.name is not None:
            route = route._replace(name=self._namespaced(request, route.name))
        ext = self.extensions.get(route.kind)
        if route.kind in ("manifest", "blob") and method in ("GET", "HEAD"):
            name, reference = route.name, route.reference
            assert name is not None and reference is not None  # parse_v2_path names both for these kinds
            if route.kind == "manifest":
                return await self.get_manifest(request, name, reference)
            return await self.get_blob(request, name, reference)
        if ext is not None:
            return await ext(request, route)
        if route.kind in ("manifest", "blob", "upload"):
            raise Unsupported("this registry does not accept pushes yet", {"method": method})
        raise NotFound("no such endpoint", request.path.decode("latin-1"))

    def _namespaced(self, request: HarborRequest, name: str) -> str:
        """The cache key of ``name``: containerd's ``?ns=<registry host>`` files it under that
        registry's namespace (a path prefix is already part of the name)."""
        ns = request.args.get(b"ns")
        if not ns:
            return name
        host = (request.getHeader(b"Host") or b"").decode("latin-1").lower()
        value = ns[0].decode("latin-1").strip().lower()
        if not value or value == host:
            return name  # the client is asking us as the registry itself
        check_name(name)
        try:
            key = self.cache.key_for(name, value)
        except UnknownRegistry:
            raise NameUnknown(
                f'this cache serves no upstream for registry {value}; configure one with registry = "{value}"',
                {"name": name, "ns": value},
            ) from None
        # The client's token names the repository as the client wrote it.
        request.scope_name = name
        return key

    # -- manifests -------------------------------------------------------------

    async def get_manifest(self, request: HarborRequest, name: str, reference: str):
        """A manifest by tag or digest.

        A reference that is no valid tag names no manifest: 404
        ``MANIFEST_UNKNOWN``, as the distribution spec's conformance suite
        expects. By digest the manifest is served as stored whatever the
        ``Accept`` header says (the client named exactly these bytes); by
        tag, a type the client does not accept is 404. ``If-None-Match``
        with the digest's ETag gets 304.
        """
        check_name(name)
        by_digest = is_digest_reference(reference)
        if by_digest:
            reference = check_digest(reference)
        await self.policy.authorize(request, scope_name(request, name), {"pull"})
        if not by_digest and not is_valid_tag(reference):
            raise ManifestUnknown("manifest unknown: not a valid tag", {"name": name, "reference": reference})
        if by_digest:
            result = await self.cache.get_manifest_by_digest(name, reference)
        else:
            result = await self.cache.get_manifest_by_tag(name, reference)
        request.cache_status = result.cache_status
        request.upstream = result.upstream
        if not by_digest and not _acceptable(request, result.media_type):
            raise ManifestUnknown(
                f"manifest is of type {result.media_type}, which the Accept header does not allow",
                {"name": name, "reference": reference},
            )
        return self._manifest_answer(request, result)

    def _manifest_answer(self, request: AnyRequest, result) -> bytes:
        """Headers for a manifest the client may have; its body (b"" for HEAD and 304)."""
        request.setHeader(b"Content-Type", served_manifest_type(result.media_type).encode())
        request.setHeader(b"Docker-Content-Digest", result.digest.encode())
        etag = '"%s"' % result.digest
        request.setHeader(b"ETag", etag.encode())
        if result.stale:
            request.setHeader(b"Warning", b'110 - "Response is Stale"')
        if if_none_match_hits(request.getHeader(b"If-None-Match"), etag):
            request.setResponseCode(304)
            return b""
        request.setHeader(b"Content-Length", b"%d" % len(result.body))
        if request.method == b"HEAD":
            return b""
        self.metrics.served_bytes.labels("oci").inc(len(result.body))
        return result.body

    def hot_manifest(self, request: AnyRequest) -> bytes | None:
        """`get_manifest` for an anonymous GET or HEAD of a fresh tag whose manifest is in memory, without Klein.

        The `http.resources.HotRoute` of ``/v2``: returns the body (b"" for HEAD and
        304) after setting what `dispatch` and `get_manifest` would set, or
        None having set nothing whenever they would do more: credentials to
        check, ``?ns=``, a digest reference, a path Klein would redirect or
        refuse, a stale or uncached tag, a media type the Accept header
        refuses (a 404 Klein writes).
        """
        path = request.path
        if (
            not path.startswith(b"/v2/")
            or b"%" in path
            or b"//" in path
            or path.endswith(b"/")
            or request.args.get(b"ns")
        ):
            return None
        try:
            rest = path[4:].decode("ascii")
        except UnicodeDecodeError:
            return None
        route = parse_v2_path(rest)
        if route is None or route.kind != "manifest" or route.name is None or route.reference is None:
            return None
        name, tag = route.name, route.reference
        if is_digest_reference(tag) or not is_valid_tag(tag) or not is_valid_repository_name(name):
            return None
        if not self.policy.lets_pull_at_once(request):
            return None
        result = self.cache.memory_manifest_by_tag(name, tag, lambda media_type: _acceptable(request, media_type))
        if result is None:
            return None
        request.front = "oci"
        request.setHeader(*API_VERSION_HEADER)
        request.cache_status = result.cache_status
        request.upstream = result.upstream
        return self._manifest_answer(request, result)

    # -- blobs -----------------------------------------------------------------

    async def get_blob(self, request: HarborRequest, name: str, digest: str):
        check_name(name)
        digest = check_digest(digest)
        await self.policy.authorize(request, scope_name(request, name), {"pull"})
        request.setHeader(b"Docker-Content-Digest", digest.encode())
        request.setHeader(b"Accept-Ranges", b"bytes")
        request.setHeader(b"ETag", b'"%s"' % digest.encode())
        if request.method == b"HEAD":
            size, status = await self.cache.head_blob(name, digest)
            request.cache_status = status
            request.setHeader(b"Content-Type", b"application/octet-stream")
            if size is not None:
                request.setHeader(b"Content-Length", b"%d" % size)
            return b""
        location = await self.cache.redirect_blob(digest)
        if location is not None:
            # [storage] redirect: the client fetches the committed object (with its Range header, if any) from
            # the object store; HEAD above and content still downloading are answered here.
            request.setResponseCode(307)
            request.setHeader(b"Location", location.encode("ascii"))
            request.setHeader(b"Content-Length", b"0")
            request.cache_status = "redirect"
            self.metrics.redirects.labels("oci").inc()
            return b""
        handle = await self.cache.get_blob(name, digest, request.getHeader(b"Range"))
        request.cache_status = handle.cache_status
        request.upstream = handle.upstream
        return await serve_source(
            request, handle.source, handle.size, b"application/octet-stream", self.metrics.served_bytes.labels("oci")
        )
