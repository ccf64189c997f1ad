"""
Authentication building blocks: passwords, start-up secrets, Authorization
header parsing, and (re-exported) roles and tokens.

The public names live here so every front imports from one place:
roles and permissions come from auth_roles, the three JWT kinds from
auth_tokens.  Nothing here speaks HTTP or SQL: fronts parse a header with
parse_basic_authorization, the index hands over the stored hash, and
check_password answers on the bcrypt pool (password_pool.py), so bcrypt never
blocks the reactor nor starves the shared thread pool.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import tempfile

import bcrypt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.logger import Logger

from harbor_cache.auth_roles import (
    ARTIFACT_SCOPES,
    ROLES,
    ArtifactTokenRequestError,
    allowed_artifact_scopes,
    allowed_registry_actions,
    can_push,
    is_valid_role,
    plan_artifact_token,
)
from harbor_cache.auth_tokens import (
    STAMP_CLAIM,
    ArtifactTokens,
    InvalidToken,
    ManagementTokens,
    RegistryTokens,
    credential_stamp,
    granted_actions,
    parse_scope,
)
from harbor_cache.password_pool import run_hashing

__all__ = [
    "ARTIFACT_SCOPES",
    "BCRYPT_ROUNDS",
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

log = Logger()

# ---------------------------------------------------------------- passwords

# bcrypt cost for new hashes (and for the dummy hash unknown users are checked
# against).  Read at call time, so tests may lower it to 4.
BCRYPT_ROUNDS = 12

# bcrypt only looks at 72 bytes; bcrypt >= 5 refuses longer input.
MAX_PASSWORD_BYTES = 72

_dummy_hashes: dict[int, bytes] = {}


def _dummy_hash(rounds: int) -> bytes:
    """A hash of a random password at this cost; made once per cost, on a thread."""
    hashed = _dummy_hashes.get(rounds)
    if hashed is None:
        hashed = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(rounds))
        _dummy_hashes[rounds] = hashed
    return hashed


def _hash_blocking(password: bytes, rounds: int) -> str:
    return bcrypt.hashpw(password, bcrypt.gensalt(rounds)).decode("ascii")


def _check_blocking(password: bytes, hashed: bytes | None, rounds: int) -> bool:
    """
    bcrypt check that costs about the same whatever goes wrong: unknown user,
    malformed stored hash, over-long password all still run one bcrypt round
    trip before answering False.
    """
    honest = hashed is not None and len(password) <= MAX_PASSWORD_BYTES
    candidate = password[:MAX_PASSWORD_BYTES]
    target = hashed if hashed is not None else _dummy_hash(rounds)
    try:
        matched = bcrypt.checkpw(candidate, target)
    except (ValueError, TypeError):
        bcrypt.checkpw(candidate, _dummy_hash(rounds))
        return False
    return matched and honest


async def hash_password(password: str) -> str:
    """
    The bcrypt hash (str, "$2b$...") of password, computed on a pool thread
    at BCRYPT_ROUNDS.  Raises ValueError for a password over 72 UTF-8 bytes
    (bcrypt would ignore the rest).
    """
    encoded = password.encode("utf-8")
    if len(encoded) > MAX_PASSWORD_BYTES:
        raise ValueError("password longer than 72 bytes")
    return await run_hashing(_hash_blocking, encoded, BCRYPT_ROUNDS)


async def check_password(password: str, hashed: str | None) -> bool:
    """
    Whether password matches the stored hash, checked on a pool thread.
    hashed None (unknown user) still costs one bcrypt check against a dummy
    hash, so the answer's timing does not reveal which users exist.  Never
    raises for a malformed hash or password: answers False.
    """
    try:
        encoded = password.encode("utf-8")
    except (AttributeError, UnicodeEncodeError):
        encoded = b""
        hashed = None
    stored: bytes | None
    try:
        stored = hashed.encode("ascii") if hashed is not None else None
    except (AttributeError, UnicodeEncodeError):
        stored = b"malformed"
    return await run_hashing(_check_blocking, encoded, stored, BCRYPT_ROUNDS)


# ------------------------------------------------------------------ secrets

SECRET_BYTES = 32
RSA_KEY_BITS = 2048


def _read_private_file(path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist; tightens loose modes."""
    try:
        with open(path, "rb") as f:
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            if mode & 0o077:
                log.warn(
                    "{path} was readable by others (mode {mode:o}); setting 0600",
                    path=path,
                    mode=mode,
                )
                os.fchmod(f.fileno(), 0o600)
            return f.read()
    except FileNotFoundError:
        return None


def _create_private_file(path: str, data: bytes) -> bool:
    """
    Write data to path with mode 0600 unless path already exists.  The bytes
    go to a temporary file first and are linked into place complete, so a
    crash never leaves a half secret and a concurrent starter never
    overwrites the first one's.  True when this call created the file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-secret-")  # 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def _load_or_create(path: str, make) -> bytes:
    data = _read_private_file(path)
    if data is None:
        if _create_private_file(path, make()):
            log.info("created {path}", path=path)
        data = _read_private_file(path)
        if data is None:
            raise FileNotFoundError(path)
    return data


def load_or_create_secret(path: str) -> bytes:
    """
    The 32-byte HMAC secret stored (hex) at path, created with mode 0600 on
    first start.  Raises ValueError when the file exists but does not hold a
    32-byte hex secret (never silently replaced: that would log everyone out).
    """
    data = _load_or_create(path, lambda: os.urandom(SECRET_BYTES).hex().encode() + b"\n")
    try:
        secret = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        secret = b""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"{path} does not hold a {SECRET_BYTES}-byte hex secret")
    return secret


def _new_rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_or_create_rsa_key(path: str) -> rsa.RSAPrivateKey:
    """
    The RSA private key (PEM, unencrypted) at path, a new 2048-bit one
    written with mode 0600 on first start.  Raises ValueError when the file
    is not an RSA key of at least 2048 bits.
    """
    data = _load_or_create(path, _new_rsa_pem)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path} is not an unencrypted PEM private key") from e
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < RSA_KEY_BITS:
        raise ValueError(f"{path} is not an RSA key of at least {RSA_KEY_BITS} bits")
    return key


# ------------------------------------------------------- Authorization header

# RFC 6750 b64token.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _split_authorization(header: bytes | str | None, scheme: str) -> str | None:
    """The credentials after scheme (case-insensitive), or None."""
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(header, str):
        return None
    given, sep, credentials = header.strip().partition(" ")
    if not sep or given.lower() != scheme:
        return None
    credentials = credentials.strip()
    if not credentials or any(c.isspace() for c in credentials):
        return None
    return credentials


def parse_basic_authorization(header: bytes | str | None) -> tuple[str, str] | None:
    """
    (username, password) from "Basic base64(user:pass)", or None for a
    missing, non-Basic or malformed header.  The password is everything after
    the first ":" (it may hold more colons, or be a JWT); it may be empty,
    the username may not.
    """
    credentials = _split_authorization(header, "basic")
    if credentials is None:
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        return None
    return username, password


def parse_bearer_authorization(header: bytes | str | None) -> str | None:
    """The token from "Bearer <token>", or None when absent or malformed."""
    credentials = _split_authorization(header, "bearer")
    if credentials is None or not _BEARER_TOKEN.fullmatch(credentials):
        return None
    return credentials
