"""Start-up settings: embedded defaults, then the TOML file, then command-line options.

Only what needs a restart lives here (listen endpoint, data dir, upstreams, Maven
repositories). Settings that change at run time (cache size, TTLs, ...) live in
the index and are described by `settings.runtime`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from harbor_cache.grammar.client_text import is_clean_text
from harbor_cache.grammar.maven_snapshots import DEFAULT_VERSION_POLICY, VERSION_POLICIES
from harbor_cache.grammar.namespaces import check_namespaces, check_prefix, check_registry_host
from harbor_cache.grammar.public_url import parse_trusted_proxies
from harbor_cache.settings.client_limits import LIMIT_KEYS, ClientLimits
from harbor_cache.settings.ldap import LdapConfig, LdapConfigError, parse_ldap
from harbor_cache.settings.oidc import OidcConfig, OidcConfigError, parse_oidc
from harbor_cache.settings.optional import require
from harbor_cache.settings.processes import (
    DEFAULT_ACCESS_FILE,
    DEFAULT_ACCESS_KEEP,
    DEFAULT_ACCESS_MAX_BYTES,
    ProcessConfigError,
    parse_log,
    parse_workers,
)
from harbor_cache.settings.schema import unknown_keys
from harbor_cache.settings.storage import StorageConfig, StorageConfigError, parse_storage

DOCKER_HUB_URL = "https://registry-1.docker.io"
DOCKER_HUB_REGISTRY = "docker.io"
MAVEN_CENTRAL_URL = "https://repo.maven.apache.org/maven2"


class ConfigError(ValueError):
    """The configuration file or an option is not usable; the message says which key."""


@dataclass(frozen=True)
class UpstreamConfig:
    """One OCI registry we pull through, chosen by route globs on the repository name."""

    name: str
    url: str
    routes: tuple[str, ...] = ("*",)
    priority: int = 0
    username: str | None = None
    password: str | None = None
    # Docker Hub keeps official images under library/: "nginx" means "library/nginx".
    library_prefix: bool = False
    # The registry host this upstream serves (containerd's ?ns=), e.g. "quay.io".
    registry: str | None = None
    # The path prefix that selects this upstream and is stripped: /v2/<prefix>/<name>.
    prefix: str | None = None
    # Pushes and deletes into this upstream's names are allowed (a proxy is read-only otherwise).
    allow_push: bool = False


MAVEN_REPOSITORY_TYPES = ("proxy", "hosted", "group")
REDEPLOY_POLICIES = ("deny", "allow")
# The largest snapshot_keep / snapshot_max_idle_days (a sanity bound: larger is a typo).
MAX_SNAPSHOT_SETTING = 100_000


@dataclass(frozen=True)
class MavenRepositoryConfig:
    """One Maven repository served under /artifacts/{id}/.

    ``type`` "proxy" mirrors ``url``; "hosted" holds what clients deploy
    (``redeploy`` says whether a release file may be overwritten); "group"
    serves its ``members`` (proxy or hosted ids, in order) behind one URL.
    """

    id: str
    url: str = ""
    private: bool = False
    username: str | None = None
    password: str | None = None
    type: str = "proxy"
    members: tuple[str, ...] = ()
    redeploy: str = "deny"
    # Hosted only: which versions it takes ("release", "snapshot", "mixed"; grammar.maven_snapshots.policy_refusal).
    version_policy: str = DEFAULT_VERSION_POLICY
    # Hosted only: timestamped builds kept per SNAPSHOT version (0: all), and days a SNAPSHOT version may go
    # without a download or deploy before it is removed (0: forever); core.maven.snapshot_cleanup.
    snapshot_keep: int = 0
    snapshot_max_idle_days: int = 0

    @property
    def is_proxy(self) -> bool:
        return self.type == "proxy"

    @property
    def is_hosted(self) -> bool:
        return self.type == "hosted"

    @property
    def is_group(self) -> bool:
        return self.type == "group"


@dataclass(frozen=True)
class Config:
    listen: str = "tcp:5001"
    # None: token realms and links are built from each request's Host (see public_url.py).
    public_url: str | None = None
    # Addresses/CIDRs whose X-Forwarded-Proto/-Host are believed (only when public_url is unset).
    trusted_proxies: tuple[str, ...] = ()
    data_dir: str = "./data"
    eviction_interval_seconds: float = 300.0
    access_flush_seconds: float = 5.0
    upstream_connect_timeout: float = 10.0
    upstream_idle_timeout: float = 30.0
    artifact_token_max_hours: int = 720
    # [server] reactor_lag_probe: measure how late the reactor runs a 10 ms timer (harbor_cache_reactor_lag_seconds).
    reactor_lag_probe: bool = False
    # [index]: None keeps the embedded sqlite file in data_dir; a postgresql:// URL
    # is the shared index of several nodes (pool_size connections per node).
    index_url: str | None = None
    index_pool_size: int = 10
    # [index] sqlite_readers: read-only sqlite connections beside the one writer (hits, /health, console reads).
    index_sqlite_readers: int = 4
    # [index] sqlite_writer_cache_mib: the one sqlite writer's page cache (an upper bound: pages as touched).
    index_sqlite_writer_cache_mib: int = 256
    # This node's name among several (its temp dir and lease holder name): default the host name.
    node_name: str | None = None
    # How long a lease of a dead node blocks the others (renewed every third of it while alive).
    lease_seconds: float = 30.0
    upstreams: tuple[UpstreamConfig, ...] = field(
        default_factory=lambda: (
            UpstreamConfig(name="dockerhub", url=DOCKER_HUB_URL, library_prefix=True, registry="docker.io"),
        )
    )
    # The file has `upstreams` (even an empty array): they are applied to the index at every start
    # (configuration as code). False: `upstreams` is the embedded default, seeded at the first start only.
    upstreams_declared: bool = False
    # The file this came from (named in messages that send the reader there); None: no file.
    config_file: str | None = None
    maven_repositories: tuple[MavenRepositoryConfig, ...] = field(
        default_factory=lambda: (MavenRepositoryConfig(id="central", url=MAVEN_CENTRAL_URL),)
    )
    # [log] access_file: the access log file (relative: to data_dir); None ("-"): access lines go to the main log.
    access_log_file: str | None = DEFAULT_ACCESS_FILE
    # [log] access_max_bytes / access_keep: size-based rotation of that file (settings.processes).
    access_max_bytes: int = DEFAULT_ACCESS_MAX_BYTES
    access_keep: int = DEFAULT_ACCESS_KEEP
    # [server] workers: processes serving the port (1: this process serves; more: it supervises them).
    workers: int = 1
    # [limits]: what one client may cost (body sizes, slowness, connections); docs/security.md.
    limits: ClientLimits = field(default_factory=ClientLimits)
    # [auth.ldap]: None is LDAP off (settings.ldap)
    ldap: LdapConfig | None = None
    # [auth.oidc]: console login through an OpenID provider; None: off (settings/oidc.py).
    oidc: OidcConfig | None = None
    # [storage]: the filesystem (default) or a bucket with data_dir/blobs as a local tier (settings/storage.py).
    storage: StorageConfig = field(default_factory=StorageConfig)


def _take(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _upstream(table: dict[str, Any], i: int) -> UpstreamConfig:
    where = f"upstreams[{i}]"
    url = _take(table, "url", str, where)
    if not url:
        raise ConfigError(f"{where}.url is required")
    registry = _take(table, "registry", str, where)
    prefix = _take(table, "prefix", str, where)
    if registry is None and url.rstrip("/") == DOCKER_HUB_URL:
        registry = DOCKER_HUB_REGISTRY
    # An upstream reached by a prefix or a registry host joins the default
    # namespace only through routes it names; a plain one routes everything.
    reached_otherwise = "prefix" in table or "registry" in table
    routes = _take(table, "routes", list, where, [] if reached_otherwise else ["*"])
    if not all(isinstance(r, str) and r for r in routes):
        raise ConfigError(f"{where}.routes: expected a list of glob strings")
    upstream = UpstreamConfig(
        name=_take(table, "name", str, where, f"upstream{i}"),
        url=url.rstrip("/"),
        routes=tuple(routes),
        priority=_take(table, "priority", int, where, 0),
        username=_take(table, "username", str, where),
        password=_take(table, "password", str, where),
        library_prefix=_take(table, "library_prefix", bool, where, url.rstrip("/") == DOCKER_HUB_URL),
        registry=registry,
        prefix=prefix,
        allow_push=_take(table, "allow_push", bool, where, False),
    )
    problem = check_upstream(upstream)
    if problem:
        raise ConfigError(f"{where}.{problem}")
    return upstream


def check_upstream(upstream: UpstreamConfig) -> str | None:
    """What is wrong with one upstream on its own ("key: why"), or None.

    Shared by the config file and the management API so both refuse the same things.
    """

    if not upstream.name or len(upstream.name) > 64 or not upstream.name.isprintable():
        return "name: 1 to 64 printable characters"
    try:
        parts = urlsplit(upstream.url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError:
        return "url: not a URL"
    if "@" in parts.netloc:
        return "url: credentials go in username and password, never in the URL"
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return f"url: expected an http:// or https:// URL, got {upstream.url!r}"
    # Stored in the index (PostgreSQL refuses NUL in text: a 500 from the management API).
    for key, value in (("username", upstream.username), ("password", upstream.password)):
        if value is not None and not is_clean_text(value):
            return f"{key}: may not contain control characters"
    if not all(is_clean_text(route) for route in upstream.routes):
        return "routes: may not contain control characters"
    if upstream.prefix is not None and (problem := check_prefix(upstream.prefix)):
        return f"prefix: {problem}"
    if upstream.registry is not None and (problem := check_registry_host(upstream.registry)):
        return f"registry: {problem}"
    return None


_KEYS_BY_MAVEN_TYPE = {
    "proxy": {"url", "username", "password"},
    "hosted": {"redeploy", "version_policy", "snapshot_keep", "snapshot_max_idle_days"},
    "group": {"members"},
}


def _maven_repository(table: dict[str, Any], i: int) -> MavenRepositoryConfig:
    where = f"maven.repositories[{i}]"
    repo_id = _take(table, "id", str, where)
    kind = _take(table, "type", str, where, "proxy")
    if kind not in MAVEN_REPOSITORY_TYPES:
        raise ConfigError(f"{where}.type: expected one of {', '.join(MAVEN_REPOSITORY_TYPES)}, got {kind!r}")
    if not repo_id:
        raise ConfigError(f"{where}: id is required")
    if "/" in repo_id or "\\" in repo_id or repo_id in (".", "..") or not repo_id.isprintable():
        raise ConfigError(f"{where}.id: {repo_id!r} is not a usable repository id")
    for other, keys in _KEYS_BY_MAVEN_TYPE.items():
        misplaced = sorted(k for k in keys - _KEYS_BY_MAVEN_TYPE[kind] if k in table)
        if other != kind and misplaced:
            raise ConfigError(f"{where}.{misplaced[0]}: only a {other} repository has it (this one is {kind})")
    url = _take(table, "url", str, where, "")
    if kind == "proxy" and not url:
        raise ConfigError(f"{where}: id and url are required")
    members = _take(table, "members", list, where, [])
    if kind == "group" and (not members or not all(isinstance(m, str) and m for m in members)):
        raise ConfigError(f"{where}.members: a group needs a non-empty list of repository ids")
    if len(set(members)) != len(members):
        raise ConfigError(f"{where}.members: a repository is listed twice")
    redeploy = _take(table, "redeploy", str, where, "deny")
    if redeploy not in REDEPLOY_POLICIES:
        raise ConfigError(f"{where}.redeploy: expected one of {', '.join(REDEPLOY_POLICIES)}, got {redeploy!r}")
    version_policy = _take(table, "version_policy", str, where, DEFAULT_VERSION_POLICY)
    if version_policy not in VERSION_POLICIES:
        raise ConfigError(
            f"{where}.version_policy: expected one of {', '.join(VERSION_POLICIES)}, got {version_policy!r}"
        )
    snapshot_keep = _take(table, "snapshot_keep", int, where, 0)
    max_idle_days = _take(table, "snapshot_max_idle_days", int, where, 0)
    for key, value in (("snapshot_keep", snapshot_keep), ("snapshot_max_idle_days", max_idle_days)):
        if not 0 <= value <= MAX_SNAPSHOT_SETTING:
            raise ConfigError(f"{where}.{key}: expected 0 (no limit) to {MAX_SNAPSHOT_SETTING}, got {value!r}")
    return MavenRepositoryConfig(
        id=repo_id,
        url=(url if url.endswith("/") else url + "/") if url else "",
        private=_take(table, "private", bool, where, False),
        username=_take(table, "username", str, where),
        password=_take(table, "password", str, where),
        type=kind,
        members=tuple(members),
        redeploy=redeploy,
        version_policy=version_policy,
        snapshot_keep=snapshot_keep,
        snapshot_max_idle_days=max_idle_days,
    )


def check_maven_groups(repositories: tuple[MavenRepositoryConfig, ...]) -> str | None:
    """What is wrong with the groups' members ("key: why"), or None.

    Members must be configured proxy or hosted repositories (no group in a
    group: no cycles, one level to reason about), and a public group may not
    hold a private member, which would otherwise be readable without a token.
    """
    by_id = {r.id: r for r in repositories}
    for r in repositories:
        if not r.is_group:
            continue
        for m in r.members:
            member = by_id.get(m)
            if member is None:
                return f"{r.id}.members: no repository {m!r}"
            if member.is_group:
                return f"{r.id}.members: {m!r} is a group (groups hold proxy and hosted repositories only)"
            if member.private and not r.private:
                return f"{r.id}.members: {m!r} is private, so the group must be private too"
    return None


def _table_array(items: Any, where: str, build, unique: str) -> tuple:
    """An array of tables ([[where]]), each built by ``build``, with a unique ``unique`` field."""
    if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
        raise ConfigError(f"[[{where}]] must be an array of tables")
    built = tuple(build(t, i) for i, t in enumerate(items))
    keys = [getattr(b, unique) for b in built]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{where}: {unique}s must be unique")
    return built


def _public_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or parts.fragment
        or any(c in value for c in '" ,\\')
    ):
        raise ConfigError(f"server.public_url: expected an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def _trusted_proxies(values: list) -> tuple[str, ...]:
    try:
        parse_trusted_proxies(values)
    except ValueError as e:
        raise ConfigError(f"server.trusted_proxies: {e}") from None
    return tuple(values)


def parse_config(document: dict[str, Any]) -> Config:
    """Build a Config from a parsed TOML document; every key is optional, none unknown.

    Keys are declared in ``settings.schema.SCHEMA``: a key added here must be added there.
    """
    unknown = unknown_keys(document)
    if unknown:
        raise ConfigError("; ".join(f"{path}: unknown key" for path in unknown))
    base = Config()
    server = document.get("server", {})
    if not isinstance(server, dict):
        raise ConfigError("[server] must be a table")
    values: dict[str, Any] = {
        "listen": _take(server, "listen", str, "server", base.listen),
        "public_url": _public_url(_take(server, "public_url", str, "server")),
        "trusted_proxies": _trusted_proxies(_take(server, "trusted_proxies", list, "server", [])),
        "data_dir": _take(server, "data_dir", str, "server", base.data_dir),
        "eviction_interval_seconds": _take(
            server, "eviction_interval_seconds", float, "server", base.eviction_interval_seconds
        ),
        "access_flush_seconds": _take(server, "access_flush_seconds", float, "server", base.access_flush_seconds),
        "upstream_connect_timeout": _take(
            server, "upstream_connect_timeout", float, "server", base.upstream_connect_timeout
        ),
        "upstream_idle_timeout": _take(server, "upstream_idle_timeout", float, "server", base.upstream_idle_timeout),
        "artifact_token_max_hours": _take(
            server, "artifact_token_max_hours", int, "server", base.artifact_token_max_hours
        ),
        "reactor_lag_probe": _take(server, "reactor_lag_probe", bool, "server", base.reactor_lag_probe),
    }
    index = document.get("index", {})
    if not isinstance(index, dict):
        raise ConfigError("[index] must be a table")
    values["index_url"] = _take(index, "url", str, "index", base.index_url)
    values["index_pool_size"] = _take(index, "pool_size", int, "index", base.index_pool_size)
    if values["index_url"] is not None and values["index_url"].split(":", 1)[0] not in (
        "postgresql",
        "postgres",
        "sqlite",
    ):
        raise ConfigError("index.url: expected a postgresql:// URL (or sqlite: for the embedded file)")
    if values["index_url"] is not None and values["index_url"].split(":", 1)[0] in ("postgresql", "postgres"):
        require("psycopg2", needed_by="`[index] url` is PostgreSQL", extra="postgresql")
    if not 1 <= values["index_pool_size"] <= 200:
        raise ConfigError("index.pool_size: must be between 1 and 200")
    values["index_sqlite_readers"] = _take(index, "sqlite_readers", int, "index", base.index_sqlite_readers)
    if not 1 <= values["index_sqlite_readers"] <= 64:
        raise ConfigError("index.sqlite_readers: must be between 1 and 64")
    values["index_sqlite_writer_cache_mib"] = _take(
        index, "sqlite_writer_cache_mib", int, "index", base.index_sqlite_writer_cache_mib
    )
    if not 2 <= values["index_sqlite_writer_cache_mib"] <= 65536:
        raise ConfigError("index.sqlite_writer_cache_mib: must be between 2 and 65536")
    values["node_name"] = _take(index, "node_name", str, "index", base.node_name)
    if values["node_name"] is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", values["node_name"]):
        raise ConfigError("index.node_name: 1 to 63 letters, digits, '.', '_' or '-' (it names a directory)")
    values["lease_seconds"] = _take(index, "lease_seconds", float, "index", base.lease_seconds)
    if not 1 <= values["lease_seconds"] <= 3600:
        raise ConfigError("index.lease_seconds: must be between 1 and 3600")
    if "upstreams" in document:
        values["upstreams"] = _table_array(document["upstreams"], "upstreams", _upstream, "name")
        values["upstreams_declared"] = True
        problem = check_namespaces(values["upstreams"])
        if problem:
            raise ConfigError(f"upstreams: {problem}")
    maven = document.get("maven", {})
    if not isinstance(maven, dict):
        raise ConfigError("[maven] must be a table")
    if "repositories" in maven:
        values["maven_repositories"] = _table_array(
            maven["repositories"], "maven.repositories", _maven_repository, "id"
        )
        problem = check_maven_groups(values["maven_repositories"])
        if problem:
            raise ConfigError(f"maven.repositories: {problem}")
    values["limits"] = _limits(document.get("limits", {}))
    try:
        values.update(parse_log(document.get("log", {})))
        values["workers"] = parse_workers(server.get("workers", base.workers))
    except ProcessConfigError as e:
        raise ConfigError(str(e)) from None
    try:
        values["ldap"] = parse_ldap(document.get("auth", {}))
        values["oidc"] = parse_oidc(document.get("auth", {}))
        values["storage"] = parse_storage(document)
    except (LdapConfigError, OidcConfigError, StorageConfigError) as e:
        raise ConfigError(str(e)) from None
    if values["eviction_interval_seconds"] <= 0:
        raise ConfigError("server.eviction_interval_seconds must be positive")
    return Config(**values)


def _limits(table: Any) -> ClientLimits:
    """The [limits] table: each key within its bounds (`settings.client_limits.LIMIT_KEYS`)."""
    if not isinstance(table, dict):
        raise ConfigError("[limits] must be a table")
    base = ClientLimits()
    values: dict[str, Any] = {}
    for key, kind, low, high in LIMIT_KEYS:
        value = _take(table, key, kind, "limits", getattr(base, key))
        if not low <= value <= high:
            raise ConfigError(f"limits.{key}: must be between {low:g} and {high:g}, got {value!r}")
        values[key] = value
    return ClientLimits(**values)


def load_config(
    path: str | None = None,
    listen: str | None = None,
    data_dir: str | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Defaults < TOML file (path, else $HARBOR_CACHE_CONFIG) < explicit options."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    path = path or env.get("HARBOR_CACHE_CONFIG") or None
    document: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                document = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path}: {e}") from e
    config = parse_config(document)
    overrides: dict[str, Any] = {"config_file": os.path.abspath(path)} if path else {}
    if listen:
        overrides["listen"] = listen
    if data_dir:
        overrides["data_dir"] = data_dir
    if overrides:
        config = Config(**{**config.__dict__, **overrides})
    return config
