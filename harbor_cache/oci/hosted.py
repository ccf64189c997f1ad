"""The write side of ``/v2/`` (and its listings): parse, authorize, shape.

`HostedFront.routes` gives one handler per route kind, which `OciFront` is
built with (its ``extensions``); the front keeps GET/HEAD of manifests and blobs and
hands everything else here.  Decisions (sessions, offsets, digests,
validation, storage) belong to `core.hosted.registry.HostedRegistry`; who may do what
to `oci.auth.RegistryAuthorizer`.
"""

from __future__ import annotations

import json
import re
from functools import partial
from urllib.parse import urlencode

from harbor_cache.core.hosted.immutable import TagImmutable
from harbor_cache.core.operations.diskspace import disk_full_error
from harbor_cache.errors import (
    BadRequest,
    Denied,
    ErrorCode,
    ManifestUnknown,
    NotAllowed,
    TagInvalid,
    Unauthorized,
    UploadRangeInvalid,
)
from harbor_cache.grammar.client_text import is_clean_text
from harbor_cache.grammar.digests import is_digest_reference
from harbor_cache.grammar.names import is_valid_repository_name, is_valid_tag
from harbor_cache.grammar.numbers import parse_decimal
from harbor_cache.grammar.oci_paths import V2Route
from harbor_cache.http.request import HarborRequest
from harbor_cache.http.request_body import body_of
from harbor_cache.oci.checks import check_digest, check_name
from harbor_cache.oci.front import RouteHandler

# "0-1023", "bytes=0-1023", "bytes 0-1023/2048", "0-1023/*"
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?\s*([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?$")


def _arg(request: HarborRequest, name: str) -> str | None:
    """A query parameter as text; 400 for a control character (``last=%00`` would reach SQL: a 500)."""
    values = request.args.get(name.encode())
    if not values:
        return None
    text = values[0].decode("utf-8", "replace")
    if not is_clean_text(text):
        raise BadRequest(f"{name} may not contain control characters")
    return text


def parse_content_range(value: bytes | str | None) -> tuple[int, int] | None:
    """``(start, end)`` (inclusive) of a chunk's Content-Range, None when absent.

    Raises a 416 error for a header that is present but unreadable or backwards.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    m = _CONTENT_RANGE.match(value.strip())
    start, end = (parse_decimal(m.group(1)), parse_decimal(m.group(2))) if m else (None, None)
    if start is None or end is None or end < start:
        raise UploadRangeInvalid("malformed Content-Range", {"content_range": value[:100]})
    return start, end


#: most repository names one /v2/_catalog response lists (an index seek each; more follow through Link)
CATALOG_PAGE = 1000


def _page_size(request: HarborRequest) -> int | None:
    raw = _arg(request, "n")
    if raw is None or raw == "":
        return None
    n = parse_decimal(raw)
    if n is None:
        raise BadRequest(
            "n must be a non-negative integer of at most 18 ASCII digits",
            {"n": raw[:40]},
            code=ErrorCode.PAGINATION_NUMBER_INVALID,
        )
    return n


def _upload_headers(request: HarborRequest, name: str, session) -> None:
    request.setHeader(b"Location", f"/v2/{name}/blobs/uploads/{session.id}".encode())
    request.setHeader(b"Docker-Upload-UUID", session.id.encode())
    request.setHeader(b"Range", b"0-%d" % max(session.offset - 1, 0))
    request.setHeader(b"Content-Length", b"0")


def _blob_created(request: HarborRequest, name: str, digest: str) -> bytes:
    request.setResponseCode(201)
    request.setHeader(b"Location", f"/v2/{name}/blobs/{digest}".encode())
    request.setHeader(b"Docker-Content-Digest", digest.encode())
    request.setHeader(b"Content-Length", b"0")
    return b""


def _json(request: HarborRequest, obj, content_type: bytes = b"application/json") -> bytes:
    body = json.dumps(obj).encode()
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


class HostedFront:
    def __init__(self, hosted, policy, metrics=None, audit=None):
        self.hosted = hosted
        self.policy = policy
        self.metrics = metrics
        self.audit = audit

    async def _record(self, request: HarborRequest, action: str, actor: str | None, target: str, detail=None) -> None:
        if self.audit is not None:
            await self.audit.record(action, actor=actor, target=target, detail=detail, request=request)

    async def _authorize_push(self, request: HarborRequest, name: str) -> str | None:
        """`policy.authorize` for pull+push, recording a refusal as ``image.push.refused``.

        A refusal is recorded when credentials were sent (bad ones, or a user
        or token without push): the anonymous 401 every client gets before it
        authenticates is routine and not recorded.
        """
        try:
            return await self.policy.authorize(request, name, {"pull", "push"})
        except (Denied, Unauthorized) as e:
            if isinstance(e, Denied) or request.getHeader(b"Authorization"):
                actor = self.policy.claimed_username(request)
                detail = {"status": 403 if isinstance(e, Denied) else 401, "code": e.code, "reason": e.message}
                await self._record(request, "image.push.refused", actor, name, detail)
            raise

    def routes(self) -> dict[str, RouteHandler]:
        """Route kind -> handler, for `OciFront`'s ``extensions`` (built with the same policy)."""
        return {
            "upload": self.upload,
            "manifest": self.manifest,
            "blob": self.blob,
            "tags": self.tags,
            "catalog": self.catalog,
            "token": self.token,
            "referrers": self.referrers,
        }

    # -- uploads -----------------------------------------------------------------------

    async def upload(self, request: HarborRequest, route):
        """The upload routes; a disk that fills up midway is 507 INSUFFICIENT_STORAGE (nothing is kept)."""
        try:
            return await self._upload(request, route)
        except Exception as e:
            full = disk_full_error(e)
            if full is None:
                raise
            raise full from None

    async def _upload(self, request: HarborRequest, route):
        name = route.name
        check_name(name)
        method = request.method
        user = await self._authorize_push(request, name)
        self.hosted.ensure_writable(name)
        if route.reference is None:
            if method != b"POST":
                raise NotAllowed("method not allowed here", {"method": method.decode()})
            return await self._start(request, name, user)
        session = await self.hosted.get_upload(name, route.reference)
        if method == b"PATCH":
            content_range = parse_content_range(request.getHeader(b"Content-Range"))
            await self.hosted.append(session, body_of(request), content_range)
            request.setResponseCode(202)
            _upload_headers(request, name, session)
            return b""
        if method == b"PUT":
            content_range = parse_content_range(request.getHeader(b"Content-Range"))
            digest = await self.hosted.complete_upload(
                session, _arg(request, "digest"), body_of(request), content_range
            )
            return _blob_created(request, name, digest)
        if method == b"GET":
            request.setResponseCode(204)
            _upload_headers(request, name, session)
            return b""
        if method == b"DELETE":
            await self.hosted.cancel_upload(session)
            request.setResponseCode(204)
            request.setHeader(b"Content-Length", b"0")
            return b""
        raise NotAllowed("method not allowed here", {"method": method.decode()})

    async def _start(self, request: HarborRequest, name: str, user: str | None):
        mount = _arg(request, "mount")
        source = _arg(request, "from")
        if mount is not None:
            digest = check_digest(mount)
            source_ok = source is None or (
                is_valid_repository_name(source) and await self.policy.may(request, source, {"pull"})
            )
            if source_ok and await self.hosted.mount(name, digest):
                return _blob_created(request, name, digest)
        monolithic = _arg(request, "digest")
        if monolithic is not None:
            digest = await self.hosted.upload_monolithic(name, monolithic, body_of(request))
            return _blob_created(request, name, digest)
        session = await self.hosted.start_upload(name, user)
        request.setResponseCode(202)
        _upload_headers(request, name, session)
        return b""

    # -- manifests and blobs ---------------------------------------------------------------

    async def manifest(self, request: HarborRequest, route):
        name, reference = route.name, route.reference
        check_name(name)
        is_tag = not is_digest_reference(reference)
        if is_tag:
            if not is_valid_tag(reference):
                if request.method == b"PUT":
                    raise TagInvalid("invalid tag", {"tag": reference})
                # No manifest can live under it: 404, like GET and HEAD (distribution-spec conformance).
                await self.policy.authorize(request, name, {"delete"})
                raise ManifestUnknown("manifest unknown: not a valid tag", {"name": name, "reference": reference})
        else:
            reference = check_digest(reference)
        if request.method == b"PUT":
            pusher = await self._authorize_push(request, name)
            self.hosted.ensure_writable(name)
            body = await self.hosted.read_manifest_body(body_of(request))
            content_type = request.getHeader(b"Content-Type")
            try:
                pushed = await self.hosted.put_manifest(
                    name,
                    reference,
                    body,
                    content_type.decode("latin-1") if content_type else None,
                    tag=reference if is_tag else None,
                )
            except TagImmutable as e:
                await self._record(request, "immutable.refused", pusher, f"{name}:{reference}", e.detail)
                raise
            await self._record(
                request,
                "image.push",
                pusher,
                f"{name}:{reference}" if is_tag else f"{name}@{reference}",
                {"digest": pushed.digest, "media_type": pushed.media_type},
            )
            request.setResponseCode(201)
            request.setHeader(b"Location", f"/v2/{name}/manifests/{pushed.digest}".encode())
            request.setHeader(b"Docker-Content-Digest", pushed.digest.encode())
            if pushed.subject:
                request.setHeader(b"OCI-Subject", pushed.subject.encode())
            request.setHeader(b"Content-Length", b"0")
            return b""
        if request.method == b"DELETE":
            deleter = await self.policy.authorize(request, name, {"delete"})
            self.hosted.ensure_writable(name)
            try:
                await self.hosted.delete_manifest(name, reference, is_tag)
            except TagImmutable as e:
                target = f"{name}:{reference}" if is_tag else f"{name}@{reference}"
                await self._record(request, "immutable.refused", deleter, target, e.detail)
                raise
            await self._record(
                request, "image.delete", deleter, f"{name}:{reference}" if is_tag else f"{name}@{reference}"
            )
            request.setResponseCode(202)
            request.setHeader(b"Content-Length", b"0")
            return b""
        raise NotAllowed("method not allowed here", {"method": request.method.decode()})

    async def blob(self, request: HarborRequest, route):
        name = route.name
        check_name(name)
        digest = check_digest(route.reference)
        if request.method != b"DELETE":
            raise NotAllowed("method not allowed here", {"method": request.method.decode()})
        await self.policy.authorize(request, name, {"delete"})
        self.hosted.ensure_writable(name)
        await self.hosted.delete_blob(name, digest)
        request.setResponseCode(202)
        request.setHeader(b"Content-Length", b"0")
        return b""

    # -- listings ------------------------------------------------------------------------------

    async def tags(self, request: HarborRequest, route):
        name = route.name
        check_name(name)
        _only_get(request)
        n = _page_size(request)
        last = _arg(request, "last")
        await self.policy.authorize(request, name, {"pull"})
        tags, more, stale = await self.hosted.list_tags(name, n, last)
        if stale:
            request.setHeader(b"Warning", b'110 - "Response is Stale"')
        if more:
            query = urlencode({"n": n, "last": tags[-1]})
            request.setHeader(b"Link", f'</v2/{name}/tags/list?{query}>; rel="next"'.encode())
        body = _json(request, {"name": name, "tags": tags})
        return b"" if request.method == b"HEAD" else body

    async def catalog(self, request: HarborRequest, route):
        _only_get(request)
        n = _page_size(request)
        # At most CATALOG_PAGE names a response whatever n asks (or none): the rest through the Link header.
        n = CATALOG_PAGE if n is None or n > CATALOG_PAGE else n
        last = _arg(request, "last")
        permissions = await self.policy.authorize_catalog(request)
        # Only the repositories the caller may pull; nothing to filter for one who may pull everything.
        visible = None if permissions.sees_everything(maven=False) else partial(permissions.may_oci, "pull")
        names, more = await self.hosted.list_repositories(n, last, visible)
        if more:
            query = urlencode({"n": n, "last": names[-1]})
            request.setHeader(b"Link", f'</v2/_catalog?{query}>; rel="next"'.encode())
        body = _json(request, {"repositories": names})
        return b"" if request.method == b"HEAD" else body

    async def referrers(self, request: HarborRequest, route: V2Route) -> bytes:
        """Referrers of a digest: hosted ones, then (for a proxied name) the upstream's; Warning 110 when stale."""
        name = route.name or ""  # always set for this route kind
        check_name(name)
        digest = check_digest(route.reference or "")
        _only_get(request)
        await self.policy.authorize(request, name, {"pull"})
        artifact_type = _arg(request, "artifactType")
        index, stale = await self.hosted.referrers(name, digest, artifact_type)
        if stale:
            request.setHeader(b"Warning", b'110 - "Response is Stale"')
        if artifact_type is not None:
            request.setHeader(b"OCI-Filters-Applied", b"artifactType")
        body = _json(request, index, b"application/vnd.oci.image.index.v1+json")
        return b"" if request.method == b"HEAD" else body

    async def token(self, request: HarborRequest, route):
        if request.method != b"GET":
            raise NotAllowed("the token endpoint takes GET", {"method": request.method.decode()})
        request.setHeader(b"Cache-Control", b"no-store")
        return _json(request, await self.policy.issue_token(request))


def _only_get(request: HarborRequest) -> None:
    if request.method not in (b"GET", b"HEAD"):
        raise NotAllowed("method not allowed here", {"method": request.method.decode()})
