"""Manifest media types: which ones we know, content negotiation, references.

Pure functions over bytes and header strings.  Parsing a manifest is
``json.loads`` on up to 4 MiB, so callers on the reactor thread may want to
run :func:`detect_manifest_media_type` / :func:`manifest_references` via
``deferToThread`` for large bodies.
"""

from __future__ import annotations

import json
from typing import Any

from harbor_cache.grammar.digests import InvalidDigest, parse_digest

__all__ = [
    "OCI_MANIFEST",
    "OCI_INDEX",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "DOCKER_MANIFEST_V2",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_MANIFEST_V1",
    "DOCKER_MANIFEST_V1_SIGNED",
    "DOCKER_CONFIG",
    "DOCKER_LAYER_GZIP",
    "OCTET_STREAM",
    "MANIFEST_TYPES",
    "INDEX_TYPES",
    "InvalidManifest",
    "accepts",
    "detect_manifest_media_type",
    "manifest_references",
    "served_manifest_type",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCTET_STREAM = "application/octet-stream"

#: Media types that point at other manifests (one per platform).
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

#: Every media type a manifest endpoint may store and serve.
MANIFEST_TYPES = frozenset(
    {
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST_V2,
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST_V1,
        DOCKER_MANIFEST_V1_SIGNED,
    }
)


#: The Accept header sent upstream for a manifest: every type, the multi-platform ones first.
MANIFEST_ACCEPT = ", ".join(
    [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, DOCKER_MANIFEST_V1_SIGNED, DOCKER_MANIFEST_V1]
)

#: A manifest is at most this large, fetched or pushed (distribution's own limit is 4 MiB).
MAX_MANIFEST_BYTES = 4 << 20


class InvalidManifest(ValueError):
    """The body is not a JSON object shaped like a manifest."""


def _bare_type(value: str) -> str:
    """``type/subtype`` of a header value, without parameters, lowercased."""
    return value.split(";", 1)[0].strip().lower()


def _quality(params: list[str]) -> float:
    """The ``q`` parameter of an Accept entry; 1 when absent or unreadable."""
    for param in params:
        name, sep, value = param.partition("=")
        if sep and name.strip().lower() == "q":
            try:
                return float(value.strip().strip('"'))
            except ValueError:
                return 1.0
    return 1.0


def accepts(accept_header: str | None, media_type: str) -> bool:
    """Whether a client sending ``accept_header`` will take ``media_type``.

    No header (or an empty one) accepts everything, as do ``*/*`` and
    ``type/*``.  Several Accept headers may be passed joined with ``,``.
    Quality values only matter when zero: the most specific matching entry
    decides, so ``*/*, application/x;q=0`` refuses ``application/x``.
    """
    if accept_header is None or not accept_header.strip():
        return True
    wanted = _bare_type(media_type)
    major = wanted.split("/", 1)[0]
    best_rank = -1
    best_q = 0.0
    for entry in accept_header.split(","):
        if not entry.strip():
            continue
        kind, *params = entry.split(";")
        kind = kind.strip().lower()
        if kind == wanted:
            rank = 2
        elif kind == f"{major}/*":
            rank = 1
        elif kind in ("*/*", "*"):
            rank = 0
        else:
            continue
        q = _quality(params)
        if rank > best_rank:
            best_rank, best_q = rank, q
        elif rank == best_rank:
            best_q = max(best_q, q)
    return best_rank >= 0 and best_q > 0


def served_manifest_type(media_type: str) -> str:
    """The ``Content-Type`` a stored manifest is served with: its media type when a manifest type, else octet-stream.

    A proxied manifest's type comes from its upstream (``Content-Type`` or
    the body's ``mediaType``) and may be anything, ``text/html`` included;
    served as such, a browser would render it as a document of our origin.
    Such a manifest is still stored and served (by digest its bytes are
    what the client asked for), but as `OCTET_STREAM` (docs/security.md).
    """
    return media_type if media_type in MANIFEST_TYPES else OCTET_STREAM


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise InvalidManifest(f"manifest is not valid JSON: {e}") from None
    if not isinstance(document, dict):
        raise InvalidManifest("manifest is not a JSON object")
    return document


def detect_manifest_media_type(body: bytes, content_type: str | None) -> str:
    """The media type to store and serve a manifest under.

    In order: ``content_type`` when it is a known manifest type; the body's
    ``mediaType`` field; then inferred from shape (``manifests`` -> OCI index,
    ``config`` + ``layers`` -> OCI manifest, ``schemaVersion`` 1 -> Docker v1
    signed).

    @raise InvalidManifest: the body is not a JSON object, or nothing above
        identifies it.
    """
    document = _load_object(body)
    if content_type is not None:
        declared = _bare_type(content_type)
        if declared in MANIFEST_TYPES:
            return declared
    media_type = document.get("mediaType")
    if isinstance(media_type, str) and media_type.strip():
        return _bare_type(media_type)
    if "manifests" in document:
        return OCI_INDEX
    if "config" in document and "layers" in document:
        return OCI_MANIFEST
    if document.get("schemaVersion") == 1:
        return DOCKER_MANIFEST_V1_SIGNED
    raise InvalidManifest("cannot tell what kind of manifest this is")


def _descriptor_digest(descriptor: Any, where: str, key: str = "digest") -> str:
    if not isinstance(descriptor, dict):
        raise InvalidManifest(f"{where} is not an object")
    digest = descriptor.get(key)
    if not isinstance(digest, str):
        raise InvalidManifest(f"{where} has no {key}")
    try:
        return str(parse_digest(digest))
    except InvalidDigest as e:
        raise InvalidManifest(f"{where}: {e}") from None


def _descriptor_list(document: dict[str, Any], field: str) -> list[Any]:
    value = document.get(field, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidManifest(f"{field} is not a list")
    return value


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def manifest_references(body: bytes) -> tuple[list[str], list[str]]:
    """What a manifest points at: ``(blob digests, child manifest digests)``.

    Blobs are the config and the layers (and ``fsLayers[].blobSum`` of a
    schema 1 manifest), in order, without duplicates; ``subject`` is not
    included.  Children are the ``manifests`` of an index or list.

    @raise InvalidManifest: bad JSON, a malformed descriptor, or a digest that
        does not pass :func:`harbor_cache.grammar.digests.parse_digest`.
    """
    document = _load_object(body)
    blobs: list[str] = []
    config = document.get("config")
    if config is not None:
        blobs.append(_descriptor_digest(config, "config"))
    for i, layer in enumerate(_descriptor_list(document, "layers")):
        blobs.append(_descriptor_digest(layer, f"layers[{i}]"))
    for i, layer in enumerate(_descriptor_list(document, "fsLayers")):
        blobs.append(_descriptor_digest(layer, f"fsLayers[{i}]", key="blobSum"))
    children = [
        _descriptor_digest(child, f"manifests[{i}]") for i, child in enumerate(_descriptor_list(document, "manifests"))
    ]
    return _unique(blobs), _unique(children)
