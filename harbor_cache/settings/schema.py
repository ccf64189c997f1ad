"""Every key the TOML config file may hold, in one declaration.

A key nobody reads is almost always a typo or a key from another version
(``strip_prefix`` for ``prefix``, an ``[index]`` section on a build without
it); ignoring it silently runs a server that differs from what the operator
wrote. So the file is checked against ``SCHEMA`` before it is parsed, and the
first unknown key stops the start with its full path
(``upstreams[1].strip_prefix: unknown key``).

How to add a key (the only place besides the parser in ``settings.startup``):

* a key of an existing table: add ``"name": KEY`` to that table's dict below;
* a new table ``[section]``: add ``"section": {"key": KEY, ...}``;
* a new array of tables ``[[section]]``: add ``"section": [{"key": KEY, ...}]``
  (a one-element list holding the schema of each table);
* a nested table (``[maven.repositories]``): nest the dicts.

Types and values are not checked here (``settings.startup`` does that and names the
key too); this module only knows which names exist. It imports nothing.
"""

from __future__ import annotations

from typing import Any

KEY = None  # a leaf: any TOML value, checked by the parser in settings.startup

SCHEMA: dict[str, Any] = {
    "server": {
        "listen": KEY,
        "public_url": KEY,
        "trusted_proxies": KEY,
        "data_dir": KEY,
        "eviction_interval_seconds": KEY,
        "access_flush_seconds": KEY,
        "upstream_connect_timeout": KEY,
        "upstream_idle_timeout": KEY,
        "artifact_token_max_hours": KEY,
        "reactor_lag_probe": KEY,
        "workers": KEY,
    },
    "upstreams": [
        {
            "name": KEY,
            "url": KEY,
            "routes": KEY,
            "priority": KEY,
            "username": KEY,
            "password": KEY,
            "library_prefix": KEY,
            "registry": KEY,
            "prefix": KEY,
            "allow_push": KEY,
        }
    ],
    "index": {
        "url": KEY,
        "pool_size": KEY,
        "sqlite_readers": KEY,
        "sqlite_writer_cache_mib": KEY,
        "node_name": KEY,
        "lease_seconds": KEY,
    },
    "log": {
        "access_file": KEY,
        "access_max_bytes": KEY,
        "access_keep": KEY,
    },
    # [storage] (settings/storage.py): the filesystem, or an S3 bucket with data_dir/blobs as a local tier
    "storage": {
        "backend": KEY,
        "bucket": KEY,
        "endpoint": KEY,
        "region": KEY,
        "prefix": KEY,
        "addressing": KEY,
        "access_key_id": KEY,
        "secret_access_key": KEY,
        "local_cache_bytes": KEY,
        "max_attempts": KEY,
        "backoff_base_seconds": KEY,
        "backoff_cap_seconds": KEY,
        "timeout_seconds": KEY,
        "multipart_threshold_bytes": KEY,
        "part_size_bytes": KEY,
        "probe_interval_seconds": KEY,
        "redirect": KEY,
        "redirect_expiry_seconds": KEY,
    },
    "limits": {
        "max_body_bytes": KEY,
        "max_upload_bytes": KEY,
        "header_timeout_seconds": KEY,
        "min_body_rate_bytes": KEY,
        "body_rate_window_seconds": KEY,
        "max_connections": KEY,
        "max_connections_per_address": KEY,
    },
    "auth": {
        # [auth.oidc]: console login through an OpenID provider (settings/oidc.py); group_roles is a free table
        "oidc": {
            "issuer": KEY,
            "client_id": KEY,
            "client_secret": KEY,
            "scopes": KEY,
            "groups_claim": KEY,
            "username_claim": KEY,
            "display_name": KEY,
            "ca_file": KEY,
            "redirect_url": KEY,
            "default_role": KEY,
            "group_roles": KEY,
            "metadata_ttl_seconds": KEY,
        },
        # [auth.ldap] (settings.ldap); group_roles maps any group cn, so its keys are not checked here
        "ldap": {
            "url": KEY,
            "start_tls": KEY,
            "bind_dn": KEY,
            "bind_password": KEY,
            "ca_file": KEY,
            "user_base": KEY,
            "user_filter": KEY,
            "group_membership": KEY,
            "group_base": KEY,
            "group_filter": KEY,
            "timeout_seconds": KEY,
            "group_roles": KEY,
        },
    },
    "maven": {
        "repositories": [
            {
                "id": KEY,
                "url": KEY,
                "private": KEY,
                "username": KEY,
                "password": KEY,
                "type": KEY,
                "members": KEY,
                "redeploy": KEY,
                "version_policy": KEY,
                "snapshot_keep": KEY,
                "snapshot_max_idle_days": KEY,
            }
        ],
    },
}


def unknown_keys(document: dict[str, Any], schema: dict[str, Any] | None = None, where: str = "") -> list[str]:
    """Paths of every key in ``document`` that ``schema`` does not declare, in file order.

    A table where the schema wants a table (or an array where it wants an
    array) is left to the parser, which reports the wrong shape by name.
    """

    schema = SCHEMA if schema is None else schema
    found: list[str] = []
    for key, value in document.items():
        path = f"{where}.{key}" if where else key
        if key not in schema:
            found.append(path)
            continue
        expected = schema[key]
        if isinstance(expected, dict) and isinstance(value, dict):
            found.extend(unknown_keys(value, expected, path))
        elif isinstance(expected, list) and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    found.extend(unknown_keys(item, expected[0], f"{path}[{i}]"))
    return found
