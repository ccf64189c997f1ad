"""
Authentication building blocks: passwords, start-up secrets, Authorization
header parsing, and (re-exported) roles and tokens.

The public names live here so every front imports from one place:
roles and permissions come from `roles`, the three JWT kinds from
`tokens`, hashes from `passwords`, key files from `keys`.  Nothing here speaks HTTP or SQL: fronts parse a header with
parse_basic_authorization, the index hands over the stored hash, and
check_password answers on the bcrypt pool (`password_pool`), so bcrypt never
blocks the reactor nor starves the shared thread pool.
"""

from __future__ import annotations

from harbor_cache.auth.headers import parse_basic_authorization, parse_bearer_authorization
from harbor_cache.auth.keys import load_or_create_rsa_key, load_or_create_secret
from harbor_cache.auth.passwords import BCRYPT_ROUNDS, MAX_PASSWORD_BYTES, check_password, hash_password
from harbor_cache.auth.roles import (
    ARTIFACT_SCOPES,
    ROLES,
    ArtifactTokenRequestError,
    allowed_artifact_scopes,
    allowed_registry_actions,
    can_push,
    is_valid_role,
    plan_artifact_token,
)
from harbor_cache.auth.tokens import (
    STAMP_CLAIM,
    ArtifactTokens,
    InvalidToken,
    ManagementTokens,
    RegistryTokens,
    credential_stamp,
    granted_actions,
    parse_scope,
)

__all__ = [
    "ARTIFACT_SCOPES",
    "BCRYPT_ROUNDS",
    "MAX_PASSWORD_BYTES",
    "ROLES",
    "ArtifactTokenRequestError",
    "ArtifactTokens",
    "InvalidToken",
    "ManagementTokens",
    "RegistryTokens",
    "STAMP_CLAIM",
    "allowed_artifact_scopes",
    "allowed_registry_actions",
    "can_push",
    "check_password",
    "credential_stamp",
    "granted_actions",
    "hash_password",
    "is_valid_role",
    "load_or_create_rsa_key",
    "load_or_create_secret",
    "parse_basic_authorization",
    "parse_bearer_authorization",
    "parse_scope",
    "plan_artifact_token",
]
