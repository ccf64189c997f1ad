"""Maven repository paths: validation and what kind of file a path holds.

Every path that reaches storage or an upstream URL goes through
:func:`normalize_artifact_path` or :func:`normalize_browse_path` first; what
they return is a relative path of plain segments (no ``.``/``..``, no empty
segment, no backslash, no control character, no leftover percent-encoding),
so joining it under a directory cannot escape it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = [
    "MavenPath",
    "InvalidPath",
    "normalize_artifact_path",
    "normalize_browse_path",
    "content_type_for",
    "CHECKSUM_EXTENSIONS",
    "METADATA_NAME",
    "is_checksum",
    "checksum_base",
    "checksum_algorithm",
    "CHECKSUM_ALGORITHMS",
    "is_metadata",
    "is_snapshot",
    "is_snapshot_version",
    "SNAPSHOT_SUFFIX",
    "is_mutable",
    "parent_path",
    "split_path",
]

METADATA_NAME = "maven-metadata.xml"
CHECKSUM_EXTENSIONS = (".sha1", ".sha256", ".sha512", ".md5")
# The hashlib name of each checksum file extension.
CHECKSUM_ALGORITHMS = {".sha1": "sha1", ".md5": "md5", ".sha256": "sha256", ".sha512": "sha512"}

_CONTENT_TYPES = (
    (".jar", "application/java-archive"),
    (".pom", "application/xml"),
    (".xml", "application/xml"),
    (".sha1", "text/plain"),
    (".sha256", "text/plain"),
    (".sha512", "text/plain"),
    (".md5", "text/plain"),
    (".asc", "application/pgp-signature"),
)
_DEFAULT_CONTENT_TYPE = "application/octet-stream"

# Extensions of files found in Maven repositories (see MavenPath.directory_listing).
_FILE_EXTENSIONS = (
    ".jar",
    ".pom",
    ".xml",
    ".sha1",
    ".sha256",
    ".sha512",
    ".md5",
    ".asc",
    ".sig",
    ".war",
    ".ear",
    ".aar",
    ".zip",
    ".gz",
    ".tgz",
    ".bz2",
    ".xz",
    ".module",
    ".json",
    ".txt",
    ".properties",
    ".klib",
    ".so",
    ".dll",
    ".exe",
    ".nbm",
    ".apk",
    ".rar",
    ".kar",
    ".swc",
    ".swf",
    ".html",
    ".htm",
    ".xhtml",
)

_PERCENT_ENCODED_RE = re.compile(r"%[0-9a-fA-F]{2}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# Longer paths are refused (414) before any upstream sees them: upstream servers
# answer 8 KiB+ request lines with their own 414, which used to become our 502.
# Real Maven paths (group/artifact/version/file) are a few hundred characters.
MAX_PATH_LENGTH = 2048
# A file or directory name longer than this cannot be stored on common file systems.
MAX_SEGMENT_LENGTH = 255


class InvalidPath(ValueError):
    """The path could escape the repository or is not a plain relative path."""


class PathTooLong(InvalidPath):
    """The path is longer than MAX_PATH_LENGTH (the front answers 414)."""


def _is_dot_segment(segment: str) -> bool:
    """Whether some common server would read ``segment`` as ``.`` or ``..``.

    Servers differ: Tomcat drops ``;params`` (``..;x`` is ``..``), IIS and
    Windows drop trailing dots and spaces (``...``, ``.. ``), some normalize
    Unicode (``\uff0e\uff0e`` is ``..`` under NFKC). A segment made only of
    dots and spaces after NFKC is refused; ``;`` is refused on its own.
    """
    folded = unicodedata.normalize("NFKC", segment)
    return folded.strip(". \t") == "" and "." in folded


def _check_relative(path: str) -> str:
    """Validate an already-decoded relative path; return it without a
    trailing slash."""
    if path.endswith("/"):
        path = path[:-1]
    if not path:
        raise InvalidPath("empty path")
    if path.startswith("/"):
        raise InvalidPath("path must be relative")
    if "\\" in path:
        raise InvalidPath("backslash in path")
    if _CONTROL_RE.search(path):
        raise InvalidPath("control character in path")
    if _PERCENT_ENCODED_RE.search(path):
        raise InvalidPath("percent-encoding left after decoding")
    if ";" in path:
        raise InvalidPath("';' in path (path parameters are not part of Maven paths)")
    for segment in path.split("/"):
        if segment == "":
            raise InvalidPath("empty path segment")
        if segment in (".", "..") or _is_dot_segment(segment):
            raise InvalidPath("dot segment in path")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_LENGTH:
            raise InvalidPath(f"path segment longer than {MAX_SEGMENT_LENGTH} bytes")
    return path


def normalize_artifact_path(raw: str) -> str:
    """Decode the still percent-encoded path after ``/artifacts/{repo}/`` once
    and validate it.

    A single trailing slash is dropped (``org/apache/`` -> ``org/apache``).

    @return: the clean relative path.
    @raise InvalidPath: empty, absolute, empty/dot segments, backslash,
        control characters, invalid UTF-8, or double percent-encoding.
    """
    if not isinstance(raw, str):
        raise InvalidPath("path must be text")
    if len(raw) > MAX_PATH_LENGTH:
        raise PathTooLong(f"path longer than {MAX_PATH_LENGTH} characters")
    try:
        decoded = unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidPath("path is not UTF-8") from None
    return _check_relative(decoded)


def normalize_browse_path(raw: str | None) -> str:
    """Validate the ``path`` query parameter of browse/info (already decoded
    by the web layer, so not decoded again).

    @return: ``""`` for the root (``None``, ``""`` or ``"/"``), else the clean
        relative path without its trailing slash.
    @raise InvalidPath: as :func:`normalize_artifact_path`.
    """
    if raw is None or raw in ("", "/"):
        return ""
    if not isinstance(raw, str):
        raise InvalidPath("path must be text")
    if len(raw) > MAX_PATH_LENGTH:
        raise PathTooLong(f"path longer than {MAX_PATH_LENGTH} characters")
    return _check_relative(raw)


def _is_html(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() in ("text/html", "application/xhtml+xml")


def _has_file_extension(path: str) -> bool:
    return _basename(path).lower().endswith(_FILE_EXTENSIONS)


def content_type_for(name: str) -> str:
    """The Content-Type for a Maven file, by extension (the kagami table)."""
    lowered = name.lower()
    for extension, content_type in _CONTENT_TYPES:
        if lowered.endswith(extension):
            return content_type
    return _DEFAULT_CONTENT_TYPE


def split_path(path: str) -> list[str]:
    """The non-empty segments of ``path`` (``""`` -> ``[]``)."""
    return [segment for segment in path.split("/") if segment]


def _basename(path: str) -> str:
    segments = split_path(path)
    return segments[-1] if segments else ""


def checksum_base(path: str) -> str | None:
    """The file a checksum file is for (``a.jar.sha1`` -> ``a.jar``), or
    L{None} when ``path`` is not a checksum file."""
    for extension in CHECKSUM_EXTENSIONS:
        if path.endswith(extension) and len(path) > len(extension):
            return path[: -len(extension)]
    return None


def checksum_algorithm(path: str) -> str | None:
    """The hashlib name for a checksum file's extension, or None for any other file."""
    for extension, algorithm in CHECKSUM_ALGORITHMS.items():
        if path.endswith(extension) and checksum_base(path) is not None:
            return algorithm
    return None


def is_checksum(path: str) -> bool:
    """True for ``.sha1``, ``.sha256``, ``.sha512`` and ``.md5`` files."""
    return checksum_base(path) is not None


def is_metadata(path: str) -> bool:
    """True for ``maven-metadata.xml`` and its checksum files, at any depth."""
    name = _basename(path)
    base = checksum_base(name)
    return name == METADATA_NAME or base == METADATA_NAME


def is_snapshot(path: str) -> bool:
    """True when any segment ends in ``-SNAPSHOT`` (a snapshot version
    directory or a file under one)."""
    return any(segment.endswith("-SNAPSHOT") for segment in split_path(path))


def is_mutable(path: str) -> bool:
    """True for files that can change upstream and so follow the metadata
    TTL: metadata and anything under a SNAPSHOT directory.  Everything else
    is a release file, immutable once cached."""
    return is_metadata(path) or is_snapshot(path)


SNAPSHOT_SUFFIX = "-SNAPSHOT"
# A timestamped SNAPSHOT build in a version or file name: -yyyyMMdd.HHmmss-buildNumber (Maven's VERSION_FILE_PATTERN).
_TIMESTAMPED_VERSION_RE = re.compile(r"-\d{8}\.\d{6}-\d+$")
_TIMESTAMPED_NAME_RE = re.compile(r"-\d{8}\.\d{6}-\d+(?=[-.]|$)")


def is_snapshot_version(version: str) -> bool:
    """Maven's ``ArtifactUtils.isSnapshot``: ends in ``-SNAPSHOT`` (any case) or is a timestamped build."""
    return version.upper().endswith(SNAPSHOT_SUFFIX) or _TIMESTAMPED_VERSION_RE.search(version) is not None


def parent_path(path: str) -> str | None:
    """The directory holding ``path``: ``"org"`` for ``"org/apache"``,
    ``""`` for ``"org"``, L{None} for the root ``""``."""
    segments = split_path(path)
    if not segments:
        return None
    return "/".join(segments[:-1])


@dataclass(frozen=True, slots=True)
class MavenPath:
    """A validated artifact path, classified once: what the front and the core ask of it on every request.

    Built by `parse` (a raw path from the URL) or `of` (a path already
    normalized, e.g. a key from the index); the fronts keep one per request
    (and the hot path one per distinct URL), so a GET never re-classifies it.
    """

    path: str
    name: str  # the last segment
    content_type: str  # `content_type_for`
    checksum_base: str | None  # the file a checksum file is for (`checksum_base`), None for other files
    checksum_algorithm: str | None  # hashlib name of a checksum file's extension (`checksum_algorithm`)
    metadata: bool  # maven-metadata.xml or one of its checksums (`is_metadata`)
    mutable: bool  # follows the metadata TTL and may be redeployed (`is_mutable`)
    file_extension: bool  # ends in an extension Maven repositories hold (see `directory_listing`)

    @classmethod
    def parse(cls, raw: str) -> MavenPath:
        """Decode and validate the raw path after ``/artifacts/{repo}/`` (`normalize_artifact_path`)."""
        return cls.of(normalize_artifact_path(raw))

    @classmethod
    def of(cls, path: str) -> MavenPath:
        """Classify an already normalized path."""
        metadata = is_metadata(path)
        return cls(
            path=path,
            name=_basename(path),
            content_type=content_type_for(path),
            checksum_base=checksum_base(path),
            checksum_algorithm=checksum_algorithm(path),
            metadata=metadata,
            mutable=metadata or is_snapshot(path),
            file_extension=_has_file_extension(path),
        )

    @property
    def is_checksum(self) -> bool:
        """True for ``.sha1``, ``.sha256``, ``.sha512`` and ``.md5`` files (`is_checksum`)."""
        return self.checksum_base is not None

    @property
    def version(self) -> str | None:
        """The version directory this file is in (``g/a/1.0/a-1.0.jar`` -> ``1.0``), or None.

        None for a ``maven-metadata.xml`` (or its checksums) at the artifact or
        group level - one whose directory is not a ``-SNAPSHOT`` version: a
        release version directory holds no metadata Maven writes - and for a
        file with fewer than three segments (no group/artifact/version).
        """
        segments = split_path(self.path)
        if len(segments) < 3:
            return None
        if self.metadata and not segments[-2].endswith(SNAPSHOT_SUFFIX):
            return None
        return segments[-2]

    @property
    def is_snapshot(self) -> bool:
        """Whether this file belongs to a SNAPSHOT version, as Maven's ``ArtifactUtils.isSnapshot`` decides.

        The version directory ends in ``-SNAPSHOT`` (or is itself a timestamped
        ``1.0-20240101.120000-1``), or the file name holds a timestamped
        build (``a-1.0-20240101.120000-1.jar``).
        """
        version = self.version
        if version is None:
            return False
        return is_snapshot_version(version) or _TIMESTAMPED_NAME_RE.search(self.name) is not None

    def directory_listing(self, content_type: str | None) -> bool:
        """Whether an upstream 200 for this path, with this Content-Type, is an HTML directory index, not the file.

        Repositories answer a directory (``org/example/lib``, ``.../1.0``) with an
        HTML page. Some servers also label real files text/html, so a name with
        a file extension Maven repositories hold is always taken as a file.
        """
        return _is_html(content_type) and not self.file_extension
