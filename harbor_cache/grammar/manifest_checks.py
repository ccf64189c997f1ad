"""What a pushed manifest must be: schema 2 of a pushable type, sized descriptors, a readable subject.

Pure checks of the body and its JSON document (the hosted registry core
decides what is stored): each refusal is a `ManifestRefused` carrying the
message and detail the core answers with (400 MANIFEST_INVALID).
"""

from __future__ import annotations

import json
from typing import Any

from harbor_cache.grammar.digests import parse_digest
from harbor_cache.grammar.mediatypes import (
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V2,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    InvalidManifest,
    detect_manifest_media_type,
)


class ManifestRefused(ValueError):
    """A pushed manifest this registry does not accept; ``message`` and ``detail`` are the error body's."""

    def __init__(self, message: str, detail: Any = None):
        super().__init__(message)
        self.message = message
        self.detail = detail


# What may be pushed: schema 2 only. Schema 1 (deprecated, unsigned bodies
# that carry no sizes) is still served from upstreams but never accepted.
PUSHABLE_TYPES = frozenset({OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_V2, DOCKER_MANIFEST_LIST})


def check_pushable(body: bytes, content_type: str | None) -> tuple[str, dict]:
    """(media type, document): the media type from Content-Type, checked against the body's ``mediaType``.

    Content-Type, when sent, must be a pushable manifest type (``text/plain``
    is refused, not sniffed); ``schemaVersion`` must be the integer 2.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ManifestRefused("manifest is not valid JSON", str(e)) from None
    if not isinstance(document, dict):
        raise ManifestRefused("manifest is not a JSON object")
    declared = (content_type or "").split(";", 1)[0].strip().lower() or None
    if declared is not None and declared not in PUSHABLE_TYPES:
        raise ManifestRefused(
            "Content-Type is not a manifest type this registry accepts",
            {"content_type": declared, "accepted": sorted(PUSHABLE_TYPES)},
        )
    version = document.get("schemaVersion")
    if type(version) is not int or version != 2:
        raise ManifestRefused("schemaVersion must be 2", {"schemaVersion": version})
    try:
        media_type = detect_manifest_media_type(body, declared)
    except InvalidManifest as e:
        raise ManifestRefused("manifest not valid", str(e)) from None
    if media_type not in PUSHABLE_TYPES:
        raise ManifestRefused("unsupported manifest media type", {"mediaType": media_type})
    inner = document.get("mediaType")
    if inner is not None and (not isinstance(inner, str) or inner.strip().lower() != media_type):
        raise ManifestRefused(
            "mediaType in the body does not match Content-Type", {"content_type": media_type, "mediaType": inner}
        )
    if media_type in INDEX_TYPES and not isinstance(document.get("manifests"), list):
        raise ManifestRefused("an index needs a manifests list")
    if media_type not in INDEX_TYPES and "config" not in document:
        raise ManifestRefused("an image manifest needs a config descriptor")
    return media_type, document


def descriptor_sizes(document: dict) -> dict[str, int]:
    """Digest -> size of every config, layer and child descriptor; each must carry an integer size."""
    descriptors = []
    if isinstance(document.get("config"), dict):
        descriptors.append(("config", document["config"]))
    for field in ("layers", "manifests"):
        items = document.get(field)
        if isinstance(items, list):
            descriptors.extend((f"{field}[{i}]", d) for i, d in enumerate(items) if isinstance(d, dict))
    sizes: dict[str, int] = {}
    for where, descriptor in descriptors:
        size = descriptor.get("size")
        if type(size) is not int or size < 0:
            raise ManifestRefused(f"{where}: size must be a non-negative integer", {"size": size})
        digest = descriptor.get("digest")
        if isinstance(digest, str):
            if sizes.get(digest, size) != size:
                raise ManifestRefused(f"{where}: two sizes for one digest", {"digest": digest})
            sizes[digest] = size
    return sizes


def subject_digest(document: dict) -> str | None:
    """The ``subject`` descriptor's digest (normalized), None when there is no subject."""
    subject = document.get("subject")
    if not isinstance(subject, dict):
        return None
    digest = subject.get("digest")
    if not isinstance(digest, str):
        return None
    try:
        return str(parse_digest(digest))
    except ValueError:
        raise ManifestRefused("subject has no valid digest") from None


def artifact_type(document: dict) -> str | None:
    """``artifactType``, else the config's media type (the referrers API's rule for images)."""
    value = document.get("artifactType")
    if isinstance(value, str) and value:
        return value
    config = document.get("config")
    if isinstance(config, dict) and isinstance(config.get("mediaType"), str):
        return config["mediaType"]
    return None
