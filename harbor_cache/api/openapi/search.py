"""/api/v1/search (api/search.py, core/operations/search.py): repositories, tags, manifests and Maven files."""

from __future__ import annotations

from harbor_cache.api.openapi.common import (
    NULLABLE_STRING,
    STRING,
    TIMESTAMP,
    array_of,
    errors,
    json_body,
    obj,
    operation,
    query_param,
    ref,
)

SCHEMAS = {
    "SearchResult": obj(
        ["kind", "repository", "name", "version", "tag", "digest", "size", "hosted", "updated_at", "link"],
        kind={"type": "string", "enum": ["image", "tag", "manifest", "maven"]},
        repository={**STRING, "description": "OCI repository name, or the Maven repository id"},
        name={**STRING, "description": "The repository name (OCI), or the artifactId (Maven)"},
        version={**NULLABLE_STRING, "description": "Maven version (null for OCI)"},
        tag={**NULLABLE_STRING, "description": "The tag (kind tag)"},
        digest={**NULLABLE_STRING, "description": "Manifest digest (tag, manifest) or file digest (Maven)"},
        size={"type": ["integer", "null"], "minimum": 0},
        hosted={"type": "boolean", "description": "Pushed or deployed here (else cached from an upstream)"},
        updated_at=TIMESTAMP,
        link={**STRING, "description": "The console page: the image page or the Maven browser on the file"},
        group={**STRING, "description": "Maven groupId (kind maven only)"},
        path={**STRING, "description": "Maven file path (kind maven only)"},
    ),
    "SearchPage": obj(
        ["results", "next"],
        results=array_of(ref("SearchResult")),
        next={**NULLABLE_STRING, "description": "Cursor of the next page (null: last page)"},
    ),
}

_DESCRIPTION = (
    "Free text matches repository names, repository:tag, manifest digests (hex) and Maven paths (with slashes "
    "or dots); under 3 characters only prefixes. `sha256:<hex or a prefix of it>` finds manifests. "
    "`g:<groupId> a:<artifactId> v:<version>` (any of them, `*` a wildcard) finds Maven files. Results are "
    "ordered exact name, name prefix, other matches, then newest first. Private Maven repositories are "
    "searched for admins only."
)


def paths() -> dict:
    """The /api/v1/search path."""
    return {
        "/api/v1/search": {
            "get": operation(
                "search",
                "Search repositories, tags, manifests and Maven artifacts",
                {
                    "200": json_body(ref("SearchPage"), "One page of results, best first."),
                    **errors(
                        {
                            400: "q missing, empty, longer than 256 characters or mixing g:/a:/v: with free text; "
                            "a bad limit, kind or cursor (code BAD_REQUEST).",
                        }
                    ),
                },
                tag="management",
                role="any authenticated user",
                description=_DESCRIPTION,
                parameters=[
                    query_param("q", STRING, "The query", True),
                    query_param("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Page size (default 20)"),
                    query_param("cursor", STRING, "The next of the previous page"),
                    query_param(
                        "kind", {"type": "string", "enum": ["image", "tag", "manifest", "maven"]}, "Only this kind"
                    ),
                ],
            )
        }
    }
