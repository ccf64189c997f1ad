"""OCI upstreams at run time: kept in the index, from the config file and from the API.

Configuration as code: the config file's ``[[upstreams]]`` are applied to the
index at every start (created, updated, and removed among those the file
declared; each change logged) and are read-only in ``/api/v1/upstreams``
(``"managed_by": "config"``, 409 on a change).  Upstreams created through the
API (``"managed_by": "api"``) are the API's alone.  A file without
``[[upstreams]]`` declares none: the embedded default (Docker Hub) is then
seeded once, at the first start, as the API's.  Every change bumps a generation number in
the same transaction; each node polls it every few seconds (`poll`) and
rebuilds its `UpstreamSet` when it moved, so a change made on one node
applies on the others without a restart.  The set is replaced whole: a
request in progress finishes with the list it started with.

Credentials are write-only: stored, used, never shown (``has_credentials``),
and bound to the URL's origin: a change of scheme, host or port drops them
unless the same request gives them again (`config_from_body`), so stored
credentials are never sent to a host they were not given for.
Maven repositories are listed for completeness and stay read-only here (they
come from the config file).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from twisted.logger import Logger

from harbor_cache.errors import BadRequest, Conflict, NotFound
from harbor_cache.grammar.namespaces import check_namespaces, effective_prefix
from harbor_cache.grammar.numbers import parse_decimal
from harbor_cache.index.rows import Upstream
from harbor_cache.settings.startup import (
    DOCKER_HUB_REGISTRY,
    DOCKER_HUB_URL,
    ConfigError,
    MavenRepositoryConfig,
    UpstreamConfig,
    check_upstream,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.core.operations.upstream_health import HealthMonitor
    from harbor_cache.index import Index
    from harbor_cache.upstream.registry import UpstreamSet

log = Logger()

MAVEN_ID_PREFIX = "maven:"
_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "url": (str,),
    "registry": (str, type(None)),
    "prefix": (str, type(None)),
    "routes": (list,),
    "priority": (int,),
    "allow_push": (bool,),
    "library_prefix": (bool,),
    "username": (str, type(None)),
    "password": (str, type(None)),
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the default port spelled out: what credentials are bound to."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return (url, "", None)  # not a URL: an origin of its own (check_upstream refuses it anyway)
    scheme = parts.scheme.lower()
    return (scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme))


def config_from_row(row: Upstream) -> UpstreamConfig:
    return UpstreamConfig(
        name=row.name,
        url=row.url,
        routes=tuple(json.loads(row.routes)),
        priority=int(row.priority),
        username=row.username,
        password=row.password,
        library_prefix=bool(row.library_prefix),
        registry=row.registry,
        prefix=row.prefix,
        allow_push=bool(row.allow_push),
    )


def row_from_config(config: UpstreamConfig) -> dict:
    row = asdict(config)
    row["routes"] = json.dumps(list(config.routes))
    row["allow_push"] = int(config.allow_push)
    row["library_prefix"] = int(config.library_prefix)
    return row


def config_from_body(body: dict[str, Any], current: UpstreamConfig | None) -> UpstreamConfig:
    """An upstream from an API body: a new one (``current`` None) or changes to ``current``.

    Fields left out keep their value (new: the config file's defaults);
    credentials left out are kept, ``null`` clears them, except when the URL
    moves to another origin (scheme, host, port): then stored credentials
    are dropped unless given again here, since they were given for the old
    host only.  BadRequest says which field is wrong.
    """
    if body.get("kind", "oci") != "oci":
        raise BadRequest(
            'only OCI upstreams ("kind": "oci") are managed here; Maven repositories come from the config file',
            {"field": "kind"},
        )
    for field, types in _TYPES.items():
        if field in body and (
            not isinstance(body[field], types) or (bool not in types and isinstance(body[field], bool))
        ):
            raise BadRequest(f"{field} has the wrong type", {"field": field})
    if current is None:
        for field in ("name", "url"):
            if field not in body:
                raise BadRequest(f"{field} is required", {"field": field})
        url = body["url"].rstrip("/")
        reached_otherwise = body.get("prefix") is not None or body.get("registry") is not None
        current = UpstreamConfig(
            name=body["name"],
            url=url,
            routes=() if reached_otherwise else ("*",),
            library_prefix=url == DOCKER_HUB_URL,
            registry=DOCKER_HUB_REGISTRY if url == DOCKER_HUB_URL and "registry" not in body else None,
        )
    changes = {f: body[f] for f in _TYPES if f in body}
    if "url" in changes:
        changes["url"] = changes["url"].rstrip("/")
        if url_origin(changes["url"]) != url_origin(current.url):
            changes.setdefault("username", None)
            changes.setdefault("password", None)
    if "routes" in changes:
        routes = changes["routes"]
        if not all(isinstance(r, str) and r and len(r) <= 255 for r in routes) or len(routes) > 100:
            raise BadRequest("routes must be a list of non-empty glob strings", {"field": "routes"})
        changes["routes"] = tuple(routes)
    for field in ("registry", "prefix"):
        if changes.get(field) == "":
            changes[field] = None
    if "priority" in changes and not -1_000_000 <= changes["priority"] <= 1_000_000:
        raise BadRequest("priority must be between -1000000 and 1000000", {"field": "priority"})
    config = replace(current, **changes)
    problem = check_upstream(config)
    if problem:
        raise BadRequest(problem, {"field": problem.split(":")[0]})
    return config


class UpstreamCatalog:
    """The OCI upstreams of this node, mirrored from the index; the API's rules."""

    def __init__(
        self,
        *,
        index: Index,
        upstream_set: UpstreamSet,
        health: HealthMonitor,
        build: Callable[[UpstreamConfig], Any],
        seed: tuple[UpstreamConfig, ...] = (),
        declared: tuple[UpstreamConfig, ...] | None = None,
        config_file: str | None = None,
        maven_repositories: Iterable[MavenRepositoryConfig] = (),
        clock: IReactorTime,
    ) -> None:
        """``declared``: the config file's ``[[upstreams]]`` (None when it has none), applied at every
        start; ``seed``: the embedded default, stored once at the first start when the file declares none;
        ``config_file``: the file's path, named when the API refuses to change what it declares."""
        self.index = index
        self.upstream_set = upstream_set
        self.health = health
        self._build = build
        self._seed = seed
        self._declared = declared
        self.config_file = config_file
        self.maven_repositories = tuple(maven_repositories)
        self.clock = clock
        self.generation: int | None = None
        self._rows: dict[int, Upstream] = {}
        # Called after the upstream list changed (e.g. to drop remembered 404s).
        self.listeners: list[Callable[[], None]] = []

    # -- loading ----------------------------------------------------------------

    async def start(self) -> None:
        """Apply the config file's upstreams (or seed the default at the first start), then load them.

        ConfigError when the file's upstreams clash with those created through the API.
        """
        now = self.clock.seconds()
        if self._declared is None:
            if await self.index.seed_upstreams([row_from_config(u) for u in self._seed], now):
                log.info("seeded {count} default upstreams into the index", count=len(self._seed))
        else:
            await self._check_declared()
            changes = await self.index.apply_declared_upstreams([row_from_config(u) for u in self._declared], now)
            for name, what, fields in changes:
                log.info(
                    "upstream {name} of the config file {what}{fields}",
                    name=name,
                    what=what,
                    fields=f": {', '.join(fields)}" if fields else "",
                )
        await self.reload()

    async def _check_declared(self) -> None:
        """The file's upstreams and the API's others must not claim one namespace (nothing is applied if so)."""
        assert self._declared is not None
        names = {u.name for u in self._declared}
        _, rows = await self.index.list_upstreams()
        others = [config_from_row(r) for r in rows if r.managed_by != "config" and r.name not in names]
        problem = check_namespaces(others + list(self._declared))
        if problem:
            raise ConfigError(
                f"upstreams: {problem} (between the config file's [[upstreams]] and those created through "
                "/api/v1/upstreams: change one of them)"
            )

    async def reload(self) -> None:
        generation, rows = await self.index.list_upstreams()
        current = {u.name: u for u in self.upstream_set.upstreams}
        built = []
        for row in rows:
            config = config_from_row(row)
            existing = current.get(config.name)
            if existing is not None and existing.config == config:
                built.append(existing)  # unchanged: keeps its tokens and health
                continue
            if existing is not None:
                self.health.forget(config.name)
            built.append(self._build(config))
        for name in set(current) - {u.name for u in built}:
            self.health.forget(name)
        self.upstream_set.replace(built)
        self._rows = {row.id: row for row in rows}
        self.generation = generation
        for listener in self.listeners:
            listener()

    async def poll(self) -> None:
        """Reload when another node (or this one) changed the upstreams."""
        if await self.index.upstreams_generation() != self.generation:
            await self.reload()

    async def fresh(self) -> None:
        """`poll` for readers: when the index cannot answer, what this node has is still shown
        (health matters most during an outage) and the failure is logged."""
        try:
            await self.poll()
        except Exception:
            log.failure("could not check the index for upstream changes; showing this node's list")

    # -- views ----------------------------------------------------------------------

    def view(self, row: Upstream) -> dict[str, Any]:
        config = config_from_row(row)
        now = self.clock.seconds()
        return {
            "id": row.id,
            "name": config.name,
            "kind": "oci",
            "url": config.url,
            "registry": config.registry,
            "prefix": config.prefix,
            "effective_prefix": effective_prefix(config),
            "routes": list(config.routes),
            "priority": config.priority,
            "allow_push": config.allow_push,
            "library_prefix": config.library_prefix,
            "has_credentials": bool(config.username or config.password),
            "managed_by": row.managed_by,
            "config_file": self.config_file if row.managed_by == "config" else None,
            "health": self.health.health_of(config.name).view(now),
        }

    def maven_view(self, repo: MavenRepositoryConfig) -> dict[str, Any]:
        return {
            "id": MAVEN_ID_PREFIX + repo.id,
            "name": repo.id,
            "kind": "maven",
            "url": repo.url,
            "registry": None,
            "prefix": None,
            "effective_prefix": None,
            "routes": [],
            "priority": 0,
            "allow_push": False,
            "library_prefix": False,
            "has_credentials": bool(repo.username or repo.password),
            "managed_by": "config",
            "config_file": self.config_file,
            # Maven repositories are not probed (only OCI upstreams get GET /v2/): said plainly, not "unknown".
            "health": {
                "status": "not_probed",
                "last_check": None,
                "latency_ms": None,
                "last_error": None,
                "consecutive_failures": 0,
                "blocked_until": None,
            },
        }

    def list(self) -> list[dict[str, Any]]:
        return [self.view(row) for row in self._rows.values()] + [self.maven_view(r) for r in self.maven_repositories]

    def get(self, upstream_id: str) -> dict[str, Any]:
        if upstream_id.startswith(MAVEN_ID_PREFIX):
            repo = next((r for r in self.maven_repositories if MAVEN_ID_PREFIX + r.id == upstream_id), None)
            if repo is not None:
                return self.maven_view(repo)
        oci_id = self._oci_id(upstream_id)
        row = None if oci_id is None else self._rows.get(oci_id)
        if row is None:
            raise NotFound("no such upstream", {"id": upstream_id})
        return self.view(row)

    def _oci_id(self, upstream_id: str) -> int | None:
        return parse_decimal(upstream_id, max_digits=11)

    def _writable_id(self, upstream_id: str) -> int:
        if upstream_id.startswith(MAVEN_ID_PREFIX) and any(
            MAVEN_ID_PREFIX + r.id == upstream_id for r in self.maven_repositories
        ):
            raise Conflict("Maven repositories are read-only here: they come from the config file", {"id": upstream_id})
        oci_id = self._oci_id(upstream_id)
        if oci_id is None or oci_id not in self._rows:
            raise NotFound("no such upstream", {"id": upstream_id})
        return oci_id

    def _changeable_id(self, upstream_id: str) -> int:
        """`_writable_id`, and not one the config file declares (the next start would undo the change)."""
        oci_id = self._writable_id(upstream_id)
        row = self._rows[oci_id]
        if row.managed_by == "config":
            raise Conflict(
                f"upstream {row.name!r} is declared in the config file {self.config_file or ''}".rstrip()
                + ": change it there (the file is applied at every start)",
                {"id": upstream_id, "managed_by": "config"},
            )
        return oci_id

    # -- changes ----------------------------------------------------------------------

    def _check_together(self, config: UpstreamConfig, replacing: int | None) -> None:
        others = [config_from_row(r) for i, r in self._rows.items() if i != replacing]
        if any(o.name == config.name for o in others):
            raise Conflict("an upstream with this name exists", {"name": config.name})
        problem = check_namespaces(others + [config])
        if problem:
            raise Conflict(problem, {"name": config.name})

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.poll()
        config = config_from_body(body, None)
        self._check_together(config, None)
        row = await self.index.create_upstream(row_from_config(config), self.clock.seconds())
        if row is None:
            raise Conflict("an upstream with this name exists", {"name": config.name})
        await self.reload()
        return self.view(row)

    async def update(self, upstream_id: str, body: dict[str, Any]) -> dict[str, Any]:
        await self.poll()
        oci_id = self._changeable_id(upstream_id)
        config = config_from_body(body, config_from_row(self._rows[oci_id]))
        self._check_together(config, oci_id)
        row = await self.index.update_upstream(oci_id, row_from_config(config), self.clock.seconds())
        if row == "missing":
            raise NotFound("no such upstream", {"id": upstream_id})
        if isinstance(row, str):  # "name_taken"
            raise Conflict("an upstream with this name exists", {"name": config.name})
        await self.reload()
        return self.view(row)

    async def delete(self, upstream_id: str) -> None:
        await self.poll()
        oci_id = self._changeable_id(upstream_id)
        if not await self.index.delete_upstream(oci_id):
            raise NotFound("no such upstream", {"id": upstream_id})
        await self.reload()

    async def test(self, body: dict[str, Any]) -> dict[str, Any]:
        """Reachability and authentication of an upstream as described (nothing is stored).

        With an ``id`` the stored upstream is the base (its credentials
        included, unless ``url`` names another origin) and the other fields
        change it for the test.
        """
        current = None
        if "id" in body:
            if not isinstance(body["id"], (int, str)) or isinstance(body["id"], bool):
                raise BadRequest("id has the wrong type", {"field": "id"})
            current = config_from_row(self._rows[self._writable_id(str(body["id"]))])
        config = config_from_body(body, current)
        upstream = self._build(config)
        try:
            result = await upstream.check_access()
        finally:
            if self.upstream_set.by_name(config.name) is None:
                self.health.forget(config.name)  # no gauges left behind for a name that is not live
        result["name"] = config.name
        return result
