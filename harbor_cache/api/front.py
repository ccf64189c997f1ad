"""The management API: every ``/api/v1`` endpoint of seeds/harbor-cache-api.md.

This front only parses requests, checks who is calling and shapes JSON; the
rules live in `core.identity.users.UserService`, `settings.runtime.RuntimeSettings`
and `core.operations.eviction.Evictor`.

Who may do what is decided from the caller's permissions
(`core.identity.principals.permissions_of`: role, own grants, groups),
computed once per request in `ApiFront.authorize` and kept on the request
(`caller_permissions`).  Every route names what it needs in `requires`:
`ANY_USER` (any valid login; listings then show only what the caller may
pull), `ADMIN` (``server_admin``: the server's own operations); operations
on one repository check the action there (a tag delete needs ``delete`` on
the repository); login and the OpenAPI document are public.  The caller is
looked up in the index on every request, so a deleted user's token stops
working at once and a changed role or grant applies to the next request (the
role in the token is ignored).  Failures use the seed's error body: 401
``UNAUTHORIZED`` with ``WWW-Authenticate: Bearer`` (plus ``error="invalid_token"``
when a token was sent but cannot be honoured), 403 ``DENIED`` with
``error="insufficient_scope"``.

Decisions the seed leaves open (also stated in the OpenAPI document):

- timestamps are ISO 8601 UTC with a ``Z`` and whole seconds;
  a configuration entry still at its default is dated when the default came
  into effect on this node (process start, or the reset that brought it back),
  as the seed gives every entry a timestamp;
- 409 ``CONFLICT`` for a taken username and for deleting or demoting the
  last admin; 404 ``NOT_FOUND`` for an unknown user id or configuration key
  (GET, DELETE); PUT with an unknown key or bad value is 400 and changes
  nothing;
- request bodies are JSON objects of at most 64 KiB; fields the seed does not
  name are ignored.
"""

from __future__ import annotations

import functools
import json
from functools import partial
from typing import Any

from klein import Klein
from twisted.logger import Logger
from werkzeug.routing import BaseConverter

from harbor_cache.api.access import caller_permissions, keep_permissions, require_oci
from harbor_cache.api.audit import export as audit_export
from harbor_cache.api.gc import GcFront
from harbor_cache.api.quotas import quota_view
from harbor_cache.auth import STAMP_CLAIM, InvalidToken, credential_stamp, parse_bearer_authorization
from harbor_cache.core.identity.principals import permissions_of
from harbor_cache.core.identity.standing import refusal
from harbor_cache.core.operations.audit import client_of
from harbor_cache.core.operations.quotas import QuotaBook
from harbor_cache.core.seams import User
from harbor_cache.errors import BadRequest, Denied, NotFound, TooLarge, Unauthorized
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.http.request import HarborRequest
from harbor_cache.http.responses import Offload, install_error_handlers, json_response, json_response_offloaded
from harbor_cache.settings.runtime import SettingError

log = Logger()

MAX_BODY_BYTES = 64 * 1024

ANY_USER = "any"
#: push somewhere (what the read-write role gives); per-repository operations check the repository itself
WRITER = "read-write"
ADMIN = "admin"
WRITER_ROLES = ("admin", "read-write")


def config_view(entry: dict) -> dict[str, Any]:
    return {"key": entry["key"], "value": entry["value"], "updated_at": iso8601(entry["updated_at"])}


def read_json_object(request: HarborRequest, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is ``{}`` when ``allow_empty``); BadRequest / 413 otherwise."""
    content = request.content
    data = content.read(MAX_BODY_BYTES + 1) if content is not None else b""
    if len(data) > MAX_BODY_BYTES:
        raise TooLarge(f"request body larger than {MAX_BODY_BYTES} bytes")
    if allow_empty and not data.strip():
        return {}
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    if error is None:
        return {"WWW-Authenticate": "Bearer"}
    text = description.replace("\\", "\\\\").replace('"', '\\"') if description else ""
    return {"WWW-Authenticate": f'Bearer error="{error}", error_description="{text}"'}


def requires(role: str):
    """Route decorator: authenticate the caller, check ``role``, pass the user row as ``caller``."""

    def decorate(handler):
        @functools.wraps(handler)
        async def wrapper(self, request: HarborRequest, *args, **kwargs):
            caller = await self.authorize(request, role)
            return await handler(self, request, *args, caller=caller, **kwargs)

        return wrapper

    return decorate


class IdConverter(BaseConverter):
    """A row id in a path: ASCII digits only, at most 18 (`grammar.numbers.MAX_DIGITS`)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(int(value))


class ApiFront:
    """The /api/v1 Klein app; collaborators are passed in, nothing here does I/O itself."""

    app = Klein()
    # ``<int:...>`` would take any Unicode digits ("/users/５" is user 5) and any length (a 30-digit id
    # overflows the index's 64-bit integers: a 500); ids are 1 to 18 ASCII digits, anything else is 404.
    app.url_map.converters["id"] = IdConverter
    install_error_handlers(app)

    def __init__(
        self,
        *,
        users,
        tokens,
        settings,
        evictor,
        openapi_document: dict | None = None,
        upstreams=None,
        audit=None,
        console=None,
        on_cache_change=None,
        gc: GcFront | None = None,
        quotas: QuotaBook | None = None,
        offload: Offload | None = None,
    ):
        self.users = users
        self.offload = offload  # encodes the bodies that grow with the index off the reactor
        self.upstreams = upstreams  # core.operations.upstreams.UpstreamCatalog
        self.tokens = tokens
        self.settings = settings
        self.evictor = evictor
        self.audit = audit
        self.console = console
        self.gc = gc  # api.gc.GcFront
        self.quotas = quotas  # core.operations.quotas.QuotaBook
        # Called after clear / cleanup / delete so gauges follow at once (service: refresh metrics).
        self.on_cache_change = on_cache_change or (lambda: None)
        # Serialized on first request (~8 ms for the whole document; most processes never serve it).
        self._openapi_document = openapi_document or {}
        self._openapi: bytes | None = None

    async def record(
        self,
        request: HarborRequest,
        action: str,
        actor: str | None,
        target: str | None = None,
        detail: dict | None = None,
    ) -> None:
        """One audit record (no-op without an audit log)."""
        if self.audit is not None:
            await self.audit.record(action, actor=actor, target=target, detail=detail, request=request)

    def _quotas(self) -> QuotaBook:
        if self.quotas is None:
            raise NotFound("quotas are not enabled")
        return self.quotas

    def _console(self):
        if self.console is None:
            raise NotFound("the console API is not enabled")
        return self.console

    # -- who is calling ----------------------------------------------------

    async def authorize(self, request: HarborRequest, role: str) -> dict:
        """The caller's current user row; Unauthorized (401) or Denied (403)."""
        request.front = "api"
        header = request.getHeader(b"Authorization")
        if header is None:
            raise Unauthorized("authentication required", headers=_challenge())
        token = parse_bearer_authorization(header)
        if token is None:
            raise Unauthorized(
                "a Bearer token is required", headers=_challenge("invalid_request", "expected: Bearer <token>")
            )
        try:
            claims = self.tokens.verify(token)
        except InvalidToken as e:
            raise Unauthorized("invalid token", e.reason, headers=_challenge("invalid_token", e.reason)) from None
        user = await self.users.find(int(claims["sub"]), robots=True)
        if user is None or user.username != claims["username"]:
            raise Unauthorized(
                "invalid token", "user no longer exists", headers=_challenge("invalid_token", "user no longer exists")
            )
        if claims.get(STAMP_CLAIM) != credential_stamp(user.password_hash):
            reason = "password changed since the token was issued"
            raise Unauthorized("invalid token", reason, headers=_challenge("invalid_token", reason))
        standing = refusal(user, self.tokens.clock.seconds())  # a disabled or expired robot
        if standing is not None:
            raise Unauthorized("invalid token", standing, headers=_challenge("invalid_token", standing))
        self.users.credentials.note_use(user, client_of(request))
        permissions = await permissions_of(self.users.index, user, False)
        keep_permissions(request, permissions)
        if role == WRITER and not permissions.may_anywhere("push"):
            raise Denied(
                "read-write or admin role required",
                {"role": user.role},
                headers={
                    "WWW-Authenticate": 'Bearer error="insufficient_scope", '
                    'error_description="read-write role required"'
                },
            )
        if role == ADMIN and not permissions.server_admin:
            raise Denied(
                "admin role required",
                {"role": user.role},
                headers={
                    "WWW-Authenticate": 'Bearer error="insufficient_scope", error_description="admin role required"'
                },
            )
        return user

    # -- auth ----------------------------------------------------------------

    @app.route("/api/v1/auth/login", methods=["POST"])
    async def login(self, request: HarborRequest):
        body = read_json_object(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise BadRequest("username and password must be strings")
        user = await self.users.authenticate(username, password, client_of(request))
        if user is None:
            await self.record(request, "login.failed", username[:128])
            raise Unauthorized("Invalid credentials", headers=_challenge())
        await self.record(request, "login", user.username)
        token = self.tokens.mint(user.id, user.username, user.role, stamp=credential_stamp(user.password_hash))
        request.setHeader(b"Cache-Control", b"no-store")
        return json_response(request, {"token": token, "expires_in": self.tokens.lifetime})

    # -- cache -----------------------------------------------------------------

    @app.route("/api/v1/cache/stats", methods=["GET"])
    @requires(ANY_USER)
    async def cache_stats(self, request: HarborRequest, caller: User):
        return json_response(request, await self.evictor.stats())

    @app.route("/api/v1/cache", methods=["DELETE"])
    @requires(ADMIN)
    async def clear_cache(self, request: HarborRequest, caller: User):
        cleared = await self.evictor.clear_proxy()
        log.info("{username} cleared the cache: {count} proxy entries", username=caller.username, count=cleared)
        await self.record(request, "cache.clear", caller.username, detail={"cleared": cleared})
        self.on_cache_change()
        return json_response(request, {"cleared": cleared})

    @app.route("/api/v1/cache/cleanup", methods=["POST"])
    @requires(ADMIN)
    async def cleanup_cache(self, request: HarborRequest, caller: User):
        cleaned = await self.evictor.run()
        await self.record(request, "cache.cleanup", caller.username, detail={"cleaned": cleaned})
        self.on_cache_change()
        return json_response(request, {"cleaned": cleaned})

    # -- garbage collection of hosted content (answers shaped in api/gc.py) -----------

    @app.route("/api/v1/gc", methods=["POST"])
    @requires(ADMIN)
    async def run_gc(self, request, caller):
        if self.gc is None:
            raise NotFound("garbage collection is not enabled")
        return await self.gc.run(request, read_json_object(request, allow_empty=True), caller.username)

    @app.route("/api/v1/gc", methods=["GET"])
    @requires(ADMIN)
    async def gc_runs(self, request, caller):
        if self.gc is None:
            raise NotFound("garbage collection is not enabled")
        return await self.gc.history(request)

    # -- configuration -----------------------------------------------------------

    @app.route("/api/v1/config", methods=["GET"])
    @requires(ADMIN)
    async def list_config(self, request: HarborRequest, caller: User):
        return json_response(request, [config_view(e) for e in self.settings.entries()])

    @app.route("/api/v1/config", methods=["PUT"])
    @requires(ADMIN)
    async def update_config(self, request: HarborRequest, caller: User):
        body = read_json_object(request)
        entries = body.get("entries")
        if not isinstance(entries, list):
            raise BadRequest('"entries" must be a list of {"key", "value"} objects')
        pairs = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "key" not in entry or "value" not in entry:
                raise BadRequest('each entry must be an object with "key" and "value"', {"index": i})
            pairs.append((entry["key"], entry["value"]))
        try:
            updated = await self.settings.update(pairs)
        except SettingError as e:
            raise BadRequest(str(e), {"key": e.key}) from None
        log.info(
            "{username} changed configuration: {keys}",
            username=caller.username,
            keys=", ".join(str(k) for k, _ in pairs),
        )
        await self.record(
            request,
            "config.update",
            caller.username,
            ", ".join(str(k) for k, _ in pairs),
            {str(k): v for k, v in pairs},
        )
        return json_response(request, {"updated": updated})

    @app.route("/api/v1/config/<key>", methods=["GET"])
    @requires(ADMIN)
    async def get_config(self, request: HarborRequest, key, caller: User):
        try:
            entry = self.settings.entry(key)
        except SettingError:
            raise NotFound("unknown configuration key", {"key": key}) from None
        return json_response(request, config_view(entry))

    @app.route("/api/v1/config/<key>", methods=["DELETE"])
    @requires(ADMIN)
    async def delete_config(self, request: HarborRequest, key, caller: User):
        try:
            await self.settings.reset(key)
        except SettingError:
            raise NotFound("unknown configuration key", {"key": key}) from None
        await self.record(request, "config.reset", caller.username, key)
        request.setResponseCode(204)
        return b""

    # -- upstreams ----------------------------------------------------------------

    @app.route("/api/v1/upstreams", methods=["GET"])
    @requires(ADMIN)
    async def list_upstreams(self, request: HarborRequest, caller: User):
        await self.upstreams.fresh()
        return json_response(request, {"upstreams": self.upstreams.list()})

    @app.route("/api/v1/upstreams", methods=["POST"])
    @requires(ADMIN)
    async def create_upstream(self, request: HarborRequest, caller: User):
        body = read_json_object(request)
        view = await self.upstreams.create(body)
        await self.record(
            request,
            "upstream.create",
            caller.username,
            view["name"],
            {"id": view["id"], "url": view["url"], "fields": sorted(body)},
        )
        log.info(
            "{username} added upstream {name} ({url})", username=caller.username, name=view["name"], url=view["url"]
        )
        request.setHeader(b"Location", b"/api/v1/upstreams/%d" % view["id"])
        return json_response(request, view, 201)

    @app.route("/api/v1/upstreams/test", methods=["POST"])
    @requires(ADMIN)
    async def test_upstream(self, request: HarborRequest, caller: User):
        return json_response(request, await self.upstreams.test(read_json_object(request)))

    @app.route("/api/v1/upstreams/<upstream_id>", methods=["GET"])
    @requires(ADMIN)
    async def get_upstream(self, request: HarborRequest, upstream_id, caller: User):
        await self.upstreams.fresh()
        return json_response(request, self.upstreams.get(upstream_id))

    @app.route("/api/v1/upstreams/<upstream_id>", methods=["PUT"])
    @requires(ADMIN)
    async def update_upstream(self, request: HarborRequest, upstream_id, caller: User):
        body = read_json_object(request)
        view = await self.upstreams.update(upstream_id, body)
        await self.record(
            request, "upstream.update", caller.username, view["name"], {"id": view["id"], "fields": sorted(body)}
        )
        log.info("{username} changed upstream {name}", username=caller.username, name=view["name"])
        return json_response(request, view)

    @app.route("/api/v1/upstreams/<upstream_id>", methods=["DELETE"])
    @requires(ADMIN)
    async def delete_upstream(self, request: HarborRequest, upstream_id, caller: User):
        await self.upstreams.poll()
        gone = self.upstreams.get(upstream_id)
        await self.upstreams.delete(upstream_id)
        await self.record(request, "upstream.delete", caller.username, gone["name"], {"id": gone["id"]})
        log.info("{username} deleted upstream {id}", username=caller.username, id=upstream_id)
        request.setResponseCode(204)
        return b""

    # -- quotas (see core/operations/quotas.py, api/quotas.py) ------------------------

    @app.route("/api/v1/quotas", methods=["GET"])
    @requires(ADMIN)
    async def list_quotas(self, request: Any, caller: User) -> bytes:
        return json_response(request, {"quotas": [quota_view(q, u) for q, u in await self._quotas().listing()]})

    @app.route("/api/v1/quotas", methods=["POST"])
    @requires(ADMIN)
    async def create_quota(self, request: Any, caller: User) -> bytes:
        row = await self._quotas().create(read_json_object(request))
        await self.record(request, "quota.create", caller.username, row.repositories, quota_view(row))
        request.setHeader(b"Location", b"/api/v1/quotas/%d" % row.id)
        return json_response(request, quota_view(*await self._quotas().get(row.id)), 201)

    @app.route("/api/v1/quotas/<id:quota_id>", methods=["GET"])
    @requires(ADMIN)
    async def get_quota(self, request: Any, quota_id: int, caller: User) -> bytes:
        return json_response(request, quota_view(*await self._quotas().get(quota_id)))

    @app.route("/api/v1/quotas/<id:quota_id>", methods=["PUT"])
    @requires(ADMIN)
    async def update_quota(self, request: Any, quota_id: int, caller: User) -> bytes:
        row = await self._quotas().update(quota_id, read_json_object(request))
        await self.record(request, "quota.update", caller.username, row.repositories, quota_view(row))
        return json_response(request, quota_view(*await self._quotas().get(row.id)))

    @app.route("/api/v1/quotas/<id:quota_id>", methods=["DELETE"])
    @requires(ADMIN)
    async def delete_quota(self, request: Any, quota_id: int, caller: User) -> bytes:
        gone = await self._quotas().delete(quota_id)
        await self.record(request, "quota.delete", caller.username, gone.repositories, {"id": quota_id})
        request.setResponseCode(204)
        return b""

    # -- the console (see api/console.py) -------------------------------------------

    @app.route("/api/v1/dashboard", methods=["GET"])
    @requires(ANY_USER)
    async def dashboard(self, request: HarborRequest, caller: User):
        return json_response(request, await self._console().dashboard())

    @app.route("/api/v1/downloads", methods=["GET"])
    @requires(ANY_USER)
    async def downloads(self, request: HarborRequest, caller: User):
        return json_response(request, self._console().downloads_now(caller_permissions(request)))

    @app.route("/api/v1/cache/entries", methods=["GET"])
    @requires(ADMIN)
    async def cache_entries(self, request: HarborRequest, caller: User):
        return json_response(request, await self._console().entries(request))

    @app.route("/api/v1/cache/entries/<id:entry_id>", methods=["DELETE"])
    @requires(ADMIN)
    async def delete_cache_entry(self, request: HarborRequest, entry_id, caller: User):
        entry = await self._console().delete_entry(entry_id)
        await self.record(
            request,
            "cache.delete",
            caller.username,
            f"{entry['repository']} {entry['key']}",
            {"id": entry_id, "type": entry["type"], "size": entry["size"]},
        )
        self.on_cache_change()
        request.setResponseCode(204)
        return b""

    @app.route("/api/v1/config/schema", methods=["GET"])
    @requires(ADMIN)
    async def config_schema(self, request: HarborRequest, caller: User):
        return json_response(request, self._console().config_schema())

    @app.route("/api/v1/audit", methods=["GET"])
    @requires(ADMIN)
    async def audit_log(self, request: HarborRequest, caller: User):
        return json_response(request, await self._console().audit(request))

    @app.route("/api/v1/audit/export", methods=["GET"])
    @requires(ADMIN)
    async def audit_export(self, request: HarborRequest, caller: User) -> bytes:
        """The filtered audit log as CSV or JSON, bounded by ``audit.export_max_rows`` (api/audit.py)."""
        console = self._console()
        limit = self.settings.get("audit.export_max_rows")
        body, _ = await audit_export(console.queries, request, limit)
        return body

    @app.route("/api/v1/images", methods=["GET"])
    @requires(ANY_USER)
    async def images(self, request: HarborRequest, caller: User):
        permissions = caller_permissions(request)
        visible = None if permissions.sees_everything(maven=False) else partial(permissions.may_oci, "pull")
        return await json_response_offloaded(request, await self._console().images(request, visible), self.offload)

    @app.route("/api/v1/images/tags", methods=["GET"])
    @requires(ANY_USER)
    async def image_tags(self, request: HarborRequest, caller: User):
        console = self._console()
        require_oci(request, "pull", console.repository_arg(request))
        return await json_response_offloaded(request, await console.image_tags(request), self.offload)

    @app.route("/api/v1/images/tags", methods=["DELETE"])
    @requires(ANY_USER)
    async def delete_image_tag(self, request: HarborRequest, caller: User):
        console = self._console()
        require_oci(request, "delete", console.repository_arg(request))
        name, tag = await console.delete_tag(request)
        await self.record(request, "image.delete", caller.username, f"{name}:{tag}")
        request.setResponseCode(204)
        return b""

    @app.route("/api/v1/images/manifest", methods=["GET"])
    @requires(ANY_USER)
    async def image_manifest(self, request: HarborRequest, caller: User):
        console = self._console()
        require_oci(request, "pull", console.repository_arg(request))
        return json_response(request, await console.image_manifest(request))

    # -- the document ------------------------------------------------------------

    @app.route("/api/v1/openapi.json", methods=["GET"])
    async def openapi(self, request: HarborRequest):
        request.setHeader(b"Content-Type", b"application/json")
        if self._openapi is None:
            self._openapi = json.dumps(self._openapi_document).encode()
        return self._openapi


# The routes of the modules below join `ApiFront.app` when they are imported; they import this module's
# names, so they come last.
from harbor_cache.api import users as _users  # noqa: E402,F401
