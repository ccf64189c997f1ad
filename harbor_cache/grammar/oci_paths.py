"""Which OCI distribution endpoint a ``/v2/...`` path addresses.

Repository names contain slashes, so the endpoint is found from the end of
the path: the last two (or three) segments name the endpoint, everything
before them is the repository name.  Names are not validated here; see
:mod:`harbor_cache.grammar.names`.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["V2Route", "parse_v2_path"]


class V2Route(NamedTuple):
    """``kind`` is one of base, catalog, token, manifest, blob, upload, tags,
    referrers; ``name`` is the repository (None for base/catalog/token);
    ``reference`` is the tag/digest, blob digest, upload session id or None."""

    kind: str
    name: str | None
    reference: str | None


def parse_v2_path(path: str) -> V2Route | None:
    """Parse the part of the URL path after ``/v2/``.

    Examples::

        ""                                   -> base
        "_catalog"                           -> catalog
        "library/nginx/manifests/latest"     -> manifest, library/nginx, latest
        "library/nginx/blobs/sha256:..."     -> blob
        "library/nginx/blobs/uploads/"       -> upload, session None
        "library/nginx/blobs/uploads/<id>"   -> upload, session <id>
        "library/nginx/tags/list"            -> tags
        "library/nginx/referrers/sha256:..." -> referrers

    @return: the route, or L{None} when the path is none of these.
    """
    if path == "":
        return V2Route("base", None, None)
    if path == "_catalog":
        return V2Route("catalog", None, None)
    if path == "token":
        return V2Route("token", None, None)
    segments = path.split("/")
    if len(segments) < 2:
        return None

    def name_before(count: int) -> str | None:
        return "/".join(segments[:-count]) or None

    last, marker = segments[-1], segments[-2]
    # <name>/blobs/uploads/ and <name>/blobs/uploads/<session>
    if len(segments) >= 4 and marker == "uploads" and segments[-3] == "blobs":
        name = name_before(3)
        return V2Route("upload", name, last or None) if name else None
    # <name>/blobs/uploads (no trailing slash)
    if marker == "blobs" and last == "uploads":
        name = name_before(2)
        return V2Route("upload", name, None) if name else None
    if marker == "tags" and last == "list":
        name = name_before(2)
        return V2Route("tags", name, None) if name else None
    kinds = {"manifests": "manifest", "blobs": "blob", "referrers": "referrers"}
    kind = kinds.get(marker)
    if kind is None or not last:
        return None
    name = name_before(2)
    return V2Route(kind, name, last) if name else None
