"""OCI upstreams at run time: kept in the index, seeded once from the config file.

The config file's ``[[upstreams]]`` are written to the index at the first
start (on any node; later starts leave the index alone), and from then on
``/api/v1/upstreams`` manages them.  Every change bumps a generation number in
the same transaction; each node polls it every few seconds (`poll`) and
rebuilds its `UpstreamSet` when it moved, so a change made on one node
applies on the others without a restart.  The set is replaced whole: a
request in progress finishes with the list it started with.

Credentials are write-only: stored, used, never shown (``has_credentials``).
Maven repositories are listed for completeness and stay read-only here (they
come from the config file).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from twisted.logger import Logger

from harbor_cache.errors import BadRequest, Conflict, NotFound
from harbor_cache.grammar.namespaces import check_namespaces, effective_prefix
from harbor_cache.grammar.numbers import parse_decimal
from harbor_cache.index.rows import Upstream
from harbor_cache.settings.startup import DOCKER_HUB_REGISTRY, DOCKER_HUB_URL, UpstreamConfig, check_upstream

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
    credentials left out are kept, ``null`` clears them.  BadRequest says
    which field is wrong.
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
        index,
        upstream_set,
        health,
        build: Callable[[UpstreamConfig], Any],
        seed: tuple[UpstreamConfig, ...],
        maven_repositories=(),
        clock,
    ):
        self.index = index
        self.upstream_set = upstream_set
        self.health = health
        self._build = build
        self._seed = seed
        self.maven_repositories = tuple(maven_repositories)
        self.clock = clock
        self.generation: int | None = None
        self._rows: dict[int, Upstream] = {}
        # Called after the upstream list changed (e.g. to drop remembered 404s).
        self.listeners: list[Callable[[], None]] = []

    # -- loading ----------------------------------------------------------------

    async def start(self) -> None:
        """Seed the index from the config file (first start only), then load it."""
        if await self.index.seed_upstreams([row_from_config(u) for u in self._seed], self.clock.seconds()):
            log.info("seeded {count} upstreams from the config file into the index", count=len(self._seed))
        await self.reload()
        if {u.name: u for u in self._seed} != {u.name: u.config for u in self.upstream_set.upstreams}:
            log.warn(
                "the config file's [[upstreams]] differ from those in the index; the index's are used "
                "(they were seeded from the file at the first start; change them with /api/v1/upstreams)"
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
            "health": self.health.health_of(config.name).view(now),
        }

    def maven_view(self, repo) -> dict[str, Any]:
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
            "health": {
                "status": "unknown",
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
        oci_id = self._writable_id(upstream_id)
        config = config_from_body(body, config_from_row(self._rows[oci_id]))
        self._check_together(config, oci_id)
        row = await self.index.update_upstream(oci_id, row_from_config(config), self.clock.seconds())
        if row == "missing":
            raise NotFound("no such upstream", {"id": upstream_id})
        if row == "name_taken":
            raise Conflict("an upstream with this name exists", {"name": config.name})
        await self.reload()
        return self.view(row)

    async def delete(self, upstream_id: str) -> None:
        await self.poll()
        oci_id = self._writable_id(upstream_id)
        if not await self.index.delete_upstream(oci_id):
            raise NotFound("no such upstream", {"id": upstream_id})
        await self.reload()

    async def test(self, body: dict[str, Any]) -> dict[str, Any]:
        """Reachability and authentication of an upstream as described (nothing is stored).

        With an ``id`` the stored upstream is the base (its credentials
        included) and the other fields change it for the test.
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
