"""``[storage]``: where committed content lives (issue 26).

``backend = "filesystem"`` (the default, and what a file without the table
means): ``data_dir/blobs`` is the store, as it always was.  ``backend =
"s3"``: a bucket of any S3-compatible service is the store and
``data_dir/blobs`` this node's local tier, a bounded LRU cache of it
(``local_cache_bytes``).  Every S3 key without ``backend = "s3"`` is a
contradiction and stops the start naming the keys, as does an s3 backend
without a bucket.  The secret is kept out of ``repr`` (never logged).

This module only checks shapes and bounds; `harbor_cache.storage.bucket`
turns the table into the client's `S3Settings` (which checks the rest, e.g.
the endpoint URL) when the node is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harbor_cache.settings.optional import require

BACKENDS = ("filesystem", "s3")
ADDRESSING = ("auto", "path", "virtual")
GiB = 1024 * 1024 * 1024

#: (key, type, low, high) of the numeric S3 keys: the client's retry and timeout limits
S3_LIMITS: tuple[tuple[str, type, float, float], ...] = (
    ("max_attempts", int, 1, 20),
    ("backoff_base_seconds", float, 0.001, 60),
    ("backoff_cap_seconds", float, 0.001, 600),
    ("timeout_seconds", float, 0.1, 3600),
    ("multipart_threshold_bytes", int, 5 * 1024 * 1024, 5 * GiB),
    ("part_size_bytes", int, 5 * 1024 * 1024, 5 * GiB),
    ("probe_interval_seconds", float, 1, 3600),
    ("redirect_expiry_seconds", int, 1, 7 * 24 * 3600),
)
S3_KEYS = (
    "bucket",
    "endpoint",
    "region",
    "prefix",
    "addressing",
    "access_key_id",
    "secret_access_key",
    "local_cache_bytes",
    "redirect",
) + tuple(k for k, *_ in S3_LIMITS)


class StorageConfigError(ValueError):
    """A ``[storage]`` key is wrong; the message names it."""


@dataclass(frozen=True)
class StorageConfig:
    backend: str = "filesystem"
    bucket: str | None = None
    endpoint: str | None = None
    region: str = "us-east-1"
    prefix: str = ""
    addressing: str = "auto"
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    #: the local tier's bound (bytes of committed files kept on this node's disk)
    local_cache_bytes: int = 10 * GiB
    max_attempts: int = 5
    backoff_base_seconds: float = 0.1
    backoff_cap_seconds: float = 5.0
    timeout_seconds: float = 60.0
    multipart_threshold_bytes: int = 64 * 1024 * 1024
    part_size_bytes: int = 16 * 1024 * 1024
    #: how often /readyz's view of the bucket is refreshed (one cheap listing request)
    probe_interval_seconds: float = 10.0
    #: blob GETs of committed content answer 307 to a presigned URL of the object (distribution's ``redirect``)
    redirect: bool = False
    #: how long such a URL is valid (distribution's default: 20 minutes)
    redirect_expiry_seconds: int = 1200

    @property
    def s3(self) -> bool:
        return self.backend == "s3"


def parse_storage(document: dict[str, Any]) -> StorageConfig:
    """The ``[storage]`` table of a config document (absent: the filesystem backend)."""
    table = document.get("storage", {})
    if not isinstance(table, dict):
        raise StorageConfigError("[storage] must be a table")
    backend = table.get("backend", "filesystem")
    if backend not in BACKENDS:
        raise StorageConfigError(f"storage.backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    given = [k for k in S3_KEYS if k in table]
    if backend != "s3":
        if given:
            raise StorageConfigError("; ".join(f'storage.{k}: only meaningful with backend = "s3"' for k in given))
        return StorageConfig()
    values: dict[str, Any] = {"backend": "s3"}
    for key in ("bucket", "endpoint", "region", "prefix", "addressing", "access_key_id", "secret_access_key"):
        if key in table:
            if not isinstance(table[key], str):
                raise StorageConfigError(f"storage.{key}: expected a string")
            values[key] = table[key]
    if not values.get("bucket"):
        raise StorageConfigError('storage.bucket is required with backend = "s3"')
    if values.get("addressing", "auto") not in ADDRESSING:
        raise StorageConfigError(f"storage.addressing: expected one of {', '.join(ADDRESSING)}")
    if ("access_key_id" in values) != ("secret_access_key" in values):
        raise StorageConfigError("storage.access_key_id and storage.secret_access_key: give both or neither")
    if values.get("prefix", "").startswith("/"):
        raise StorageConfigError("storage.prefix: must not start with '/'")
    if not isinstance(table.get("redirect", False), bool):
        raise StorageConfigError("storage.redirect: expected true or false")
    values["redirect"] = table.get("redirect", False)
    values["local_cache_bytes"] = _number(table, "local_cache_bytes", int, 0, 1 << 60, StorageConfig.local_cache_bytes)
    for key, kind, low, high in S3_LIMITS:
        values[key] = _number(table, key, kind, low, high, getattr(StorageConfig, key))
    if values["backoff_cap_seconds"] < values["backoff_base_seconds"]:
        raise StorageConfigError("storage.backoff_cap_seconds: must be at least backoff_base_seconds")
    require("botocore", needed_by='`[storage] backend = "s3"` signs with botocore', extra="s3")
    return StorageConfig(**values)


def _number(table: dict[str, Any], key: str, kind: type[Any], low: float, high: float, default: Any) -> Any:
    value: Any = table.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise StorageConfigError(f"storage.{key}: expected {kind.__name__}, got {value!r}")
    if not low <= value <= high:
        raise StorageConfigError(f"storage.{key}: must be between {low:g} and {high:g}, got {value!r}")
    return value
