"""The Maven front (the Kagami API): ``/artifacts``, ``/repositories``, ``/token``, ``/.well-known/jwks.json``.

It parses requests, checks tokens and shapes responses; the cache core
(`core.maven.cache.MavenCache`) decides what to serve.  Artifact paths are taken
from the raw request path (Twisted has already percent-decoded the segments
it hands to resources, which would hide ``%2e%2e`` and ``%2f``) and go through
`grammar.maven_paths.MavenPath.parse` (classified once) before anything else happens, so a bad
path is a 400 before any file or upstream is touched.

Who may read a private repository, delete or deploy, and the tokens of
``POST /token`` and ``/.well-known/jwks.json``, are `maven.auth`'s: this
front routes to it and writes its `AuthChallenge` with the challenges.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.routing import PathConverter

from harbor_cache.auth import parse_basic_authorization
from harbor_cache.core.identity.credentials import Credentials
from harbor_cache.core.maven.deploy import MavenDeployer
from harbor_cache.core.maven.files import MavenFile
from harbor_cache.core.operations.diskspace import disk_full_error
from harbor_cache.errors import BadRequest, HarborError, NotFound, UnknownRepository, UriTooLong
from harbor_cache.grammar.etags import if_none_match_hits
from harbor_cache.grammar.http_dates import parse_http_date
from harbor_cache.grammar.maven_paths import (
    InvalidPath,
    MavenPath,
    PathTooLong,
    normalize_browse_path,
)
from harbor_cache.grammar.public_url import PublicURL
from harbor_cache.http.cursors import cursor_arg, decode_cursor, encode_cursor
from harbor_cache.http.errors import status_of
from harbor_cache.http.quick import AnyRequest, HeaderBlock
from harbor_cache.http.request import HarborRequest
from harbor_cache.http.request_body import body_of
from harbor_cache.http.responses import install_error_handlers, json_response, json_response_offloaded, write_error
from harbor_cache.http.serving import serve_source
from harbor_cache.maven.auth import DELETE, READ, ArtifactAuthorizer, AuthChallenge
from harbor_cache.storage.bucket_range import BucketRange

log = Logger()

ARTIFACTS_PREFIX = b"/artifacts/"
# How many parsed artifact paths the hot path remembers (then it starts over).
_HOT_TARGETS_SIZE = 4096
# An encoded "/" or "\\" would turn into a separator after decoding; NUL never belongs in a path.
_ENCODED_SEPARATOR_RE = re.compile(r"%(2f|5c|00)", re.IGNORECASE)


def _bad_path(e: Exception, raw: str | None = None) -> HarborError:
    """400 for an unsafe path; 414 URI_TOO_LONG for an over-long one (never sent upstream)."""
    detail = {"reason": str(e), **({"path": raw[:200]} if raw is not None else {})}
    if isinstance(e, PathTooLong):
        return UriTooLong("path too long", detail)
    return BadRequest("invalid path", detail)


def _reason_phrase(message: str) -> bytes:
    """``message`` as a safe HTTP reason phrase (printable ASCII, one line, bounded)."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in message)
    return text[:300].encode("ascii")


def not_modified(request: AnyRequest, f: MavenFile) -> bool:
    """True when the client's conditional headers say its copy is current (If-None-Match wins)."""
    inm = request.getHeader(b"If-None-Match")
    if inm is not None:
        return if_none_match_hits(inm, f.etag)
    ims = request.getHeader(b"If-Modified-Since")
    if ims is not None:
        since = parse_http_date(ims.decode("latin-1"))
        return since is not None and int(f.last_modified) <= since
    return False


def file_headers(f: MavenFile) -> tuple[HeaderBlock, HeaderBlock | None]:
    """The headers of every answer for ``f`` (validators), and those of a whole in-memory body (None: not in memory).

    Encoded once per `MavenFile` (``f.wire``): a memory hit reuses its file until the row or body changes.
    """
    wire = f.wire
    if wire is None:
        pairs = [(b"Last-Modified", f.http_last_modified)]
        if f.etag is not None:
            pairs.append((b"ETag", f.etag.encode()))
        pairs.append((b"Accept-Ranges", b"bytes"))
        if f.stale:
            pairs.append((b"Warning", b'110 - "Response is Stale"'))
        whole = None
        if f.body is not None:
            whole = HeaderBlock(
                [*pairs, (b"Content-Type", f.content_type.encode()), (b"Content-Length", b"%d" % len(f.body))]
            )
        wire = f.wire = (HeaderBlock(pairs), whole)
    return wire


class _AnyPath(PathConverter):
    """Like ``path`` but also matching control characters, so they reach the path check (400)."""

    regex = "(?s:.+)"
    part_isolating = False


class MavenFront:
    app = Klein()
    # '//' is an empty path segment, which must be refused (400), not redirected.
    app.url_map.merge_slashes = False
    app.url_map.converters["anypath"] = _AnyPath

    @app.handle_errors(AuthChallenge)
    def _challenge(self, request: IRequest, failure: Failure) -> bytes:
        e = failure.value
        assert isinstance(e, AuthChallenge)  # what handle_errors routes here
        body = write_error(request, status_of(e), e.code, e.message, e.detail)
        request.responseHeaders.setRawHeaders(b"WWW-Authenticate", [c.encode() for c in e.challenges])
        return body

    install_error_handlers(app)

    def __init__(self, cache, tokens, index, metrics, credentials: Credentials, audit=None, public_url=None):
        self.cache = cache
        self.public_url = PublicURL.of(public_url)
        self.deployer = MavenDeployer(cache, audit)
        self.metrics = metrics
        self.audit = audit
        self._served = metrics.served_bytes.labels("maven")
        self.auth = ArtifactAuthorizer(tokens, index, credentials, lambda: cache.repositories)
        # Raw request path -> (repository id, clean path) of paths the hot path parsed (a pure function of the path).
        self._hot_targets: dict[bytes, tuple[str, MavenPath]] = {}
        self.offload: Any = None  # encodes browse listings off the reactor (service: a thread pool; None: inline)

    def _repository(self, repo_id: str, unknown_status: int = 404):
        try:
            return self.cache.repository(repo_id)
        except UnknownRepository:
            if unknown_status == 400:
                raise BadRequest("invalid repository id", {"repositoryId": repo_id}) from None
            raise

    # -- artifacts ----------------------------------------------------------

    def _artifact_target(self, request: AnyRequest) -> tuple[str, MavenPath]:
        """(repository id, clean path) from the raw request path; 400 for anything unsafe."""
        raw = request.path
        if not raw.startswith(ARTIFACTS_PREFIX):
            raise NotFound("no such endpoint", raw.decode("latin-1"))
        try:
            rest = raw[len(ARTIFACTS_PREFIX) :].decode("ascii")
        except UnicodeDecodeError:
            raise _bad_path(InvalidPath("path is not ASCII (percent-encode it)")) from None
        if _ENCODED_SEPARATOR_RE.search(rest):
            raise _bad_path(InvalidPath("encoded separator or NUL in path"), rest)
        repo_raw, _, path_raw = rest.partition("/")
        try:
            repo_id = unquote(repo_raw, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest("invalid repository id") from None
        if not repo_id or "/" in repo_id or "\\" in repo_id or repo_id in (".", ".."):
            raise BadRequest("invalid repository id", {"repositoryId": repo_id})
        try:
            path = MavenPath.parse(path_raw)
        except InvalidPath as e:
            raise _bad_path(e, path_raw) from None
        return repo_id, path

    @app.route("/artifacts/", methods=["GET", "HEAD", "DELETE"])
    @app.route("/artifacts/<anypath:rest>", methods=["GET", "HEAD", "DELETE"])
    async def artifact(self, request: HarborRequest, rest: str = ""):
        request.front = "maven"
        # (the hot route parsed this raw path already when it saw it first: not again)
        repo_id, path = self._hot_targets.get(request.path) or self._artifact_target(request)
        repo = self._repository(repo_id)
        if request.method != b"DELETE" and request.path.endswith(b"/"):
            # A directory: its listing is never served or stored as a file (browse lists directories).
            raise NotFound(
                "not a file (directories are listed by /repositories/{id}/browse)",
                {"repositoryId": repo_id, "path": path.path},
            )
        if request.method == b"DELETE":
            claims = await self.auth.authorize(request, repo_id, DELETE, path.path)
            await self.cache.delete(repo_id, path.path)
            if self.audit is not None:
                await self.audit.record(
                    "artifact.delete", actor=claims.get("sub"), target=f"{repo_id}/{path.path}", request=request
                )
            request.setResponseCode(204)
            return b""
        if repo.private:
            await self.auth.authorize(request, repo_id, READ, path.path)
        # (a hit missing from the local tier streams from the bucket: a Range reads only its part, a HEAD nothing)
        f = await self.cache.get_file(repo_id, path, repo, request.getHeader(b"Range"), request.method == b"HEAD")
        body = self._answer(request, f)
        if body is not None:
            return body
        return await serve_source(
            request, f.source, f.size, f.content_type.encode(), self.metrics.served_bytes.labels("maven")
        )

    def _answer(self, request: AnyRequest, f: MavenFile) -> bytes | None:
        """Status and headers for ``f``; the body when it is answered at once (304, or small and in memory).

        None: the body is to be streamed from ``f.source`` (`serve_source`).
        """
        request.cache_status = f.cache_status
        if f.upstream is not None:
            request.upstream = f.upstream
        validators, whole = file_headers(f)
        if not_modified(request, f):
            if isinstance(f.source, BucketRange):
                f.source.discard()  # (unread, the store's ranged answer would hold its connection paused for good)
            request.set_headers(validators)
            request.setResponseCode(304)
            return b""
        body = f.body
        if body is not None and whole is not None and (request.getHeader(b"Range") is None or f.source is None):
            # Small and in memory: the whole answer in one write.
            request.set_headers(whole)
            if request.method == b"HEAD":
                return b""
            self._served.inc(len(body))
            return body
        request.set_headers(validators)
        return None

    def hot_artifact(self, request: AnyRequest) -> bytes | None:
        """`artifact` for a GET or HEAD of a warm small file in a public proxy repository, without Klein.

        The `http.resources.HotRoute` of ``/artifacts``: returns the body (b"" for
        HEAD and 304) after setting what `artifact` would set, or None having
        set nothing, whenever `artifact` would have to do more than this: a
        bad path, a directory, a private repository (token check), a Range,
        anything but a memory hit (`MavenCache.memory_hit`).
        """
        raw = request.path
        if raw.endswith(b"/") or request.getHeader(b"Range") is not None:
            return None
        target = self._hot_targets.get(raw)
        if target is None:
            try:
                target = self._artifact_target(request)
            except HarborError:
                return None  # (artifact() answers it)
            if len(self._hot_targets) >= _HOT_TARGETS_SIZE:
                self._hot_targets.clear()
            self._hot_targets[raw] = target
        repo_id, path = target
        repo = self.cache.repositories.get(repo_id)
        if repo is None or repo.private:
            return None
        f = self.cache.memory_hit(repo_id, path)
        if f is None:
            return None
        request.front = "maven"
        return self._answer(request, f)

    # -- repositories ---------------------------------------------------------

    @app.route("/artifacts/<anypath:rest>", methods=["PUT"])
    async def deploy(self, request: HarborRequest, rest: str = ""):
        """Deploy one file into a hosted repository (201 new, 200 replaced).

        An error's message is also the status line's reason phrase: Maven's
        HTTP client prints that, not the body.
        """
        request.front = "maven"
        try:
            repo_id, path = self._artifact_target(request)
            self._repository(repo_id)
            self.deployer.hosted(repo_id)
            user = await self.auth.authorize_write(request, repo_id, path.path)
            created = await self.deployer.deploy(repo_id, path, body_of(request), user)
        except Exception as failed:
            e = failed if isinstance(failed, HarborError) else disk_full_error(failed)  # (507: nothing was kept)
            if e is None:
                raise
            status = status_of(e)
            await self._record_refusal(request, status, e, rest)
            body = write_error(request, status, e.code, e.message, e.detail, e.headers)
            request.setResponseCode(status, _reason_phrase(e.message))
            if isinstance(e, AuthChallenge):
                request.responseHeaders.setRawHeaders(b"WWW-Authenticate", [c.encode() for c in e.challenges])
            if status == 405:
                request.setHeader(b"Allow", b"GET, HEAD, DELETE")
            request.setHeader(b"Content-Length", b"%d" % len(body))
            return body
        if self.audit is not None and not path.is_checksum:  # (a .sha1 beside each file would only be noise)
            await self.audit.record(
                "artifact.deploy",
                actor=user,
                target=f"{repo_id}/{path.path}",
                detail={"replaced": not created},
                request=request,
            )
        request.setResponseCode(201 if created else 200)
        request.setHeader(b"Content-Length", b"0")
        return b""

    async def _record_refusal(self, request: HarborRequest, status: int, e: HarborError, rest: str) -> None:
        """A deploy refused (401 with credentials, 403, 409) as ``artifact.deploy.refused``.

        A 401 without an Authorization header is the challenge a client gets
        before it sends credentials: routine, not recorded.
        """
        if self.audit is None or status not in (401, 403, 409):
            return
        header = request.getHeader(b"Authorization")
        if status == 401 and not header:
            return
        basic = parse_basic_authorization(header) if header else None
        actor = basic[0][:128] if basic is not None and basic[0] else None
        detail = {"status": status, "code": str(e.code), "reason": e.message}
        await self.audit.record(
            "artifact.deploy.refused", actor=actor, target=rest[:512], detail=detail, request=request
        )

    @app.route("/repositories", methods=["GET", "HEAD"])
    @app.route("/repositories/", methods=["GET", "HEAD"])
    async def repositories(self, request: HarborRequest):
        request.front = "maven"
        return await self._big_json(
            request, {"repositories": await self.cache.repository_list(self.public_url.for_request(request))}
        )

    def _query_path(self, request: HarborRequest, required: bool) -> str:
        values = request.args.get(b"path")
        if not values or values[0] == b"":
            if required:
                raise BadRequest("missing path")
            return ""
        try:
            raw = values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise _bad_path(InvalidPath("path is not UTF-8")) from None
        try:
            path = normalize_browse_path(raw)
        except InvalidPath as e:
            raise _bad_path(e, raw) from None
        if required and not path:
            raise BadRequest("missing path")
        return path

    @app.route("/repositories/<repo_id>/browse", methods=["GET", "HEAD"])
    async def browse(self, request: HarborRequest, repo_id: str):
        request.front = "maven"
        path = self._query_path(request, required=False)
        repo = self._repository(repo_id, unknown_status=400)
        visible = await self.auth.browse_filter(request, repo_id, path) if repo.private else None
        after, limit = self._browse_page(request)
        doc = await self.cache.browse(repo_id, path, after, limit)
        if visible is not None:  # pull granted below this directory only: the entries on the way there
            doc["entries"] = [e for e in doc["entries"] if visible(e["path"])]
        if "next" in doc:  # more children than one page: the cursor to pass back
            doc["next"] = encode_cursor(*doc["next"])
        return await self._big_json(request, doc)

    def _browse_page(self, request: HarborRequest) -> tuple[tuple[str, str] | None, int | None]:
        """``cursor`` (a previous page's ``next``) and ``limit`` (1..maven.browse_page_size) of a browse."""
        raw = cursor_arg(request)
        after = None
        if raw is not None:
            stage, name = decode_cursor(raw, str, str)
            if stage not in ("d", "f"):
                raise BadRequest("invalid cursor: pass back the next value of the previous page")
            after = (stage, name)
        most = int(self.cache.settings.get("maven.browse_page_size"))
        values = request.args.get(b"limit")
        if not values or not values[0]:
            return after, None
        text = values[0].decode("latin-1")
        if not (text.isascii() and text.isdigit() and len(text) <= 9 and 1 <= int(text) <= most):
            raise BadRequest(f"limit must be an integer from 1 to {most}", {"limit": text[:32]})
        return after, int(text)

    @app.route("/repositories/<repo_id>/info", methods=["GET", "HEAD"])
    async def info(self, request: HarborRequest, repo_id: str):
        path = await self._readable_path(request, repo_id, required=True)
        return self._json(request, await self.cache.info(repo_id, path))

    async def _readable_path(self, request: HarborRequest, repo_id: str, required: bool) -> str:
        """The validated ``path`` query of a browse/info request, after the repository's read check."""
        request.front = "maven"
        path = self._query_path(request, required=required)
        repo = self._repository(repo_id, unknown_status=400)
        if repo.private:
            await self.auth.authorize(request, repo_id, READ, path)
        return path

    async def _big_json(self, request: HarborRequest, doc) -> bytes:
        """`_json` for a listing that grows with the index: encoded on `offload`."""
        body = await json_response_offloaded(request, doc, self.offload)
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b"" if request.method == b"HEAD" else body

    def _json(self, request: HarborRequest, doc) -> bytes:
        body = json_response(request, doc)
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b"" if request.method == b"HEAD" else body

    # -- tokens ---------------------------------------------------------------

    @app.route("/token", methods=["POST"])
    async def token(self, request: HarborRequest):
        """Mint an artifact token (`maven.auth.ArtifactAuthorizer.token_response`)."""
        request.front = "maven"
        return await self.auth.token_response(request)

    @app.route("/.well-known/jwks.json", methods=["GET", "HEAD"])
    async def jwks(self, request: HarborRequest):
        request.front = "maven"
        return self._json(request, self.auth.jwks())
