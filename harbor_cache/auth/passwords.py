"""Password hashes: bcrypt on its own bounded pool (`password_pool`), so a
login storm never blocks the reactor nor starves the shared thread pool, and
an unknown user costs the same bcrypt round trip as a known one."""

from __future__ import annotations

import os

import bcrypt
from twisted.logger import Logger

from harbor_cache.auth.password_pool import run_hashing

log = Logger()


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
