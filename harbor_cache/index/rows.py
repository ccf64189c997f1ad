"""The rows the index returns: frozen dataclasses named after what they hold.

A row is built from a query's columns by name (`harbor_cache.index.engine.fetch_all`);
a column the class does not name is ignored, so a node running older code
keeps working on a schema a newer node has migrated.  Field names are the
column names, so ``entry.digest`` reads what ``SELECT digest`` wrote.  Rows
never reach the wire as they are: the fronts build their JSON field by field.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached or hosted file: an OCI manifest or blob, or a Maven file (table ``entries``)."""

    id: int
    kind: str  # "proxy" or "hosted"
    type: str  # "manifest", "blob" or "maven"
    repository: str
    key: str
    digest: str
    size: int
    media_type: str | None
    sha1: str | None
    upstream: str | None
    upstream_modified: float | None
    created_at: float
    fetched_at: float
    last_access: float
    access_count: int


@dataclass(frozen=True, slots=True)
class ProxyEntry:
    """A proxy entry as eviction sees it: what to order by and what to tell the caches."""

    id: int
    type: str
    repository: str
    key: str
    digest: str
    size: int
    created_at: float
    last_access: float
    access_count: int


@dataclass(frozen=True, slots=True)
class CacheTotals:
    """Entry counts by type, and the bytes on disk with each digest counted once."""

    entries: int
    manifests: int
    blobs: int
    maven: int
    proxy: int
    total_size: int


@dataclass(frozen=True, slots=True)
class Tag:
    """A tag of an OCI repository and the manifest digest it names (table ``tags``)."""

    repository: str
    tag: str
    digest: str
    kind: str
    media_type: str | None
    fetched_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class User:
    """A user of the management API and the registry (table ``users``)."""

    id: int
    username: str
    password_hash: str
    role: str
    created_at: float
    updated_at: float
    #: "user" or "robot" (a robot's username is ``robot$<name>``; its role is "none")
    kind: str = "user"
    #: where the account comes from: "local", "ldap" or "oidc"
    source: str = "local"
    #: its name there: an LDAP DN, an OIDC subject
    external_id: str | None = None
    #: a JSON list of grants (`harbor_cache.auth.permissions.parse_grants`)
    grants: str = "[]"
    description: str = ""
    disabled: int = 0
    expires_at: float | None = None
    last_used_at: float | None = None
    last_used_addr: str | None = None
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """A group of users (table ``groups``): its grants, and optionally a role, apply to every member."""

    id: int
    name: str
    description: str
    role: str | None
    grants: str
    source: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Setting:
    """One stored runtime setting; ``value`` is the text the schema parses."""

    key: str
    value: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class Upstream:
    """An OCI upstream managed at run time; ``routes`` is a JSON list, booleans are 0/1."""

    id: int
    name: str
    url: str
    registry: str | None
    prefix: str | None
    routes: str
    priority: int
    allow_push: int
    library_prefix: int
    username: str | None
    password: str | None
    created_at: float
    updated_at: float
    # "config": declared in the config file (applied at every start); "api": created through the API.
    managed_by: str = "api"


@dataclass(frozen=True, slots=True)
class Upload:
    """An upload session of the hosted registry; ``writer`` appends to it until ``writer_until``."""

    id: str
    repository: str
    owner: str
    size: int
    started_at: float
    touched_at: float
    writer: str | None
    writer_until: float | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Who did what and when; ``detail`` is JSON text or None."""

    id: int
    at: float
    actor: str | None
    action: str
    target: str | None
    detail: str | None
    client: str | None


@dataclass(frozen=True, slots=True)
class Referrer:
    """A hosted manifest that names a ``subject`` (the referrers API); ``annotations`` is JSON text."""

    repository: str
    digest: str
    subject: str
    media_type: str
    artifact_type: str | None
    size: int
    annotations: str | None


@dataclass(frozen=True, slots=True)
class ImageRepository:
    """An OCI repository in the console: its hosted and cached tags and manifests."""

    name: str
    hosted_tags: int
    cached_tags: int
    hosted_manifests: int
    cached_manifests: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class ImageTag:
    """A tag in the console, with the size of its manifest when that is stored."""

    tag: str
    digest: str
    kind: str
    media_type: str | None
    updated_at: float
    size: int | None


@dataclass(frozen=True, slots=True)
class MavenRepositoryStats:
    """One Maven repository's files (checksums excluded), their bytes, and the last write."""

    repository: str
    artifact_count: int
    total_size: int
    last_updated: float | None


@dataclass(frozen=True, slots=True)
class NodeClaim:
    """Which process holds a node name (table ``nodes``): its random instance id and last heartbeat."""

    name: str
    instance: str
    started_at: float
    heartbeat_at: float
