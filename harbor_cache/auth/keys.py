"""Start-up secrets: the HMAC secret and the RSA key, created once with private
file modes in the (shared) data directory and read by every node."""

from __future__ import annotations

import os
import stat
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.logger import Logger

log = Logger()


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
