"""The Maven front (maven/front.py): /artifacts, /repositories, /token and the JWKS, after kagami's API.

Its errors are kagami's (plain text, no Error body), so responses here are
described by text alone.
"""

from __future__ import annotations

from functools import partial

from harbor_cache.api.openapi.common import (
    BINARY,
    CURSOR,
    NULLABLE_TIMESTAMP,
    STRING,
    TIMESTAMP,
    Security,
    array_of,
    header,
    json_body,
    obj,
    operation,
    path_param,
    plain,
    query_param,
    ref,
)

_INTEGER = {"type": "integer"}

SCHEMAS = {
    "Repositories": obj(
        ["repositories"],
        repositories=array_of(
            obj(
                ["id", "url", "artifactCount", "totalSize", "lastUpdated", "isPrivate"],
                id=STRING,
                url=STRING,
                artifactCount=_INTEGER,
                totalSize=_INTEGER,
                lastUpdated=NULLABLE_TIMESTAMP,
                isPrivate={"type": "boolean"},
                type={
                    "enum": ["proxy", "hosted", "group"],
                    "description": "hosted and group: url is this server's own address",
                },
                members={
                    "type": "array",
                    "items": STRING,
                    "description": "A group's members, in the order they are asked",
                },
            )
        ),
    ),
    "Browse": obj(
        ["repositoryId", "currentPath", "parentPath", "entries"],
        repositoryId=STRING,
        currentPath=STRING,
        parentPath={"type": ["string", "null"]},
        entries=array_of(
            obj(
                ["name", "type", "path", "lastModified"],
                name=STRING,
                type={"type": "string", "enum": ["file", "directory"]},
                path=STRING,
                size={"type": "integer", "description": "Files only"},
                lastModified=TIMESTAMP,
            )
        ),
        next={
            "type": "string",
            "description": "Only when more children follow (maven.browse_page_size): pass it back as cursor",
        },
    ),
    "FileInfo": obj(
        ["repositoryId", "path", "name", "type", "size", "lastModified", "contentType"],
        repositoryId=STRING,
        path=STRING,
        name=STRING,
        type={"type": "string", "const": "file"},
        size=_INTEGER,
        lastModified=TIMESTAMP,
        contentType=STRING,
        sha1=STRING,
        sha256=STRING,
    ),
    "Jwks": obj(["keys"], keys=array_of({"type": "object"})),
}

READ: Security = [{"bearerAuth": []}, {"basicAuth": []}, {}]
WRITE: Security = READ[:2]

_read = partial(operation, tag="maven", security=READ)
_write = partial(operation, tag="maven", security=WRITE)
_public = partial(operation, tag="maven", security=[{}])

_REPO_ID = path_param("repositoryId", STRING, "Repository identifier")
_ARTIFACT = [
    _REPO_ID,
    path_param("artifactPath", STRING, "Path inside the repository; may contain '/', e.g. org/x/y/1.0/y-1.0.jar"),
]
# A private repository's or a token's refusals (kagami's answers: no Error body).
_AUTH = {
    "401": {
        "description": "Private repository without credentials, or an invalid token.",
        "headers": {"WWW-Authenticate": header('Bearer, or Bearer error="invalid_token", ...')},
    },
    "403": {
        "description": "The token lacks the repository or scope.",
        "headers": {"WWW-Authenticate": header('Bearer error="insufficient_scope", ...')},
    },
}
_FILE_HEADERS = {
    "Content-Type": header("By extension (.jar application/java-archive, .pom application/xml, ...)"),
    "Content-Length": header("Bytes", _INTEGER),
    "Last-Modified": header("HTTP date"),
}


def paths() -> dict:
    """The Maven front's paths."""
    return {
        "/repositories": {
            "get": _public(
                "listRepositories",
                "Configured Maven repositories with statistics",
                {"200": json_body(ref("Repositories"), "Every repository.")},
            )
        },
        "/repositories/{repositoryId}/browse": {
            "get": _read(
                "browseRepository",
                "Directory listing of cached content",
                {
                    "200": json_body(ref("Browse"), "Entries at path (root when path is omitted)."),
                    **plain({400: "Invalid repository id or path."}),
                    **_AUTH,
                },
                parameters=[
                    _REPO_ID,
                    query_param("path", STRING, "Path inside the repository"),
                    query_param(
                        "limit",
                        {"type": "integer", "minimum": 1},
                        "Most children (default and maximum: maven.browse_page_size)",
                    ),
                    query_param("cursor", CURSOR, "The previous page's next: this page starts after it"),
                ],
            )
        },
        "/repositories/{repositoryId}/info": {
            "get": _read(
                "fileInfo",
                "Details of one file",
                {
                    "200": json_body(ref("FileInfo"), "The file."),
                    **plain({400: "Invalid repository id, missing path, or file not found."}),
                    **_AUTH,
                },
                parameters=[_REPO_ID, query_param("path", STRING, "File path", True)],
            )
        },
        "/artifacts/{repositoryId}/{artifactPath}": _artifact(),
        "/token": {"post": _token()},
        "/.well-known/jwks.json": {
            "get": _public(
                "jwks", "Public keys that verify artifact tokens", {"200": json_body(ref("Jwks"), "JWK set.")}
            )
        },
    }


def _artifact() -> dict:
    """/artifacts/{repositoryId}/{artifactPath}: download, headers, removal and deploy."""
    return {
        "get": _read(
            "getArtifact",
            "Download an artifact (fetched from upstream on a miss)",
            {
                "200": {"description": "The file.", "headers": _FILE_HEADERS, "content": {"*/*": {"schema": BINARY}}},
                **plain(
                    {
                        400: "Invalid path.",
                        404: "Repository or file not found (also a directory).",
                        414: "Path over 2048 characters (code URI_TOO_LONG).",
                        502: "The upstream answered badly.",
                        503: "The upstream could not be reached.",
                        507: "A cold file the disk cannot hold (code INSUFFICIENT_STORAGE).",
                    }
                ),
                **_AUTH,
            },
            parameters=_ARTIFACT,
        ),
        "head": _read(
            "headArtifact",
            "Artifact headers only",
            {
                "200": {"description": "Headers of the file.", "headers": _FILE_HEADERS},
                **plain({404: "Repository or file not found."}),
                **_AUTH,
            },
            parameters=_ARTIFACT,
        ),
        "delete": _write(
            "deleteArtifact",
            "Remove a file or directory from the cache (upstream untouched; scope artifacts:delete)",
            {
                "204": {"description": "Deleted."},
                **plain({400: "Invalid path.", 404: "Repository or file not found."}),
                **_AUTH,
            },
            parameters=_ARTIFACT,
        ),
        "put": _write(
            "deployArtifact",
            "Deploy a file into a hosted repository (mvn deploy; Basic user:password of a read-write "
            "or admin user, or a token with artifacts:write)",
            {
                **plain(
                    {
                        201: "Deployed.",
                        200: "Replaced (SNAPSHOT, maven-metadata.xml, or a redeploy the policy allows).",
                        400: "Invalid path; a checksum file that is malformed, names a file not "
                        "deployed, or does not match it (DIGEST_INVALID); a SNAPSHOT into a "
                        "version_policy = release repository or a release into a snapshot one (BAD_REQUEST, "
                        "before the body is read; the message is also the reason phrase).",
                        404: "Repository not found.",
                        405: "A proxy or group repository (deploy to a hosted one).",
                        409: "A release file already deployed, and the repository's redeploy policy "
                        "is deny (answered before the body is read). The message is also the status line's reason "
                        "phrase.",
                        413: "Content-Length over limits.max_upload_bytes, before the body is read.",
                        507: "The file would take the disk below cache.min_free_bytes (before the body "
                        "is read), or the disk filled up while it was written (code INSUFFICIENT_STORAGE).",
                    }
                ),
                **_AUTH,
            },
            parameters=_ARTIFACT,
            request_body={"required": True, "content": {"application/octet-stream": {"schema": BINARY}}},
        ),
    }


def _token() -> dict:
    """POST /token: an artifact token for Basic credentials.

    The form body is described on the operation rather than in a schema with
    required fields: every field is optional.
    """
    return operation(
        "mintArtifactToken",
        "Mint an RS256 artifact token (Basic username/password of a user)",
        {
            "200": {"description": "The raw JWT.", "content": {"text/plain": {"schema": STRING}}},
            **plain({400: "Unknown scope or repository, or a bad expires_in."}),
            "401": {"description": "No or wrong credentials.", "headers": {"WWW-Authenticate": header("Basic")}},
            **plain({403: "A scope beyond the caller's role."}),
        },
        tag="maven",
        security=[{"basicAuth": []}],
        description="Form fields: expires_in (hours, default 3), repositories and scope "
        "(comma-separated; artifacts:read, artifacts:delete, artifacts:write; "
        "delete and write only for read-write and admin users).",
        request_body={
            "required": False,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": obj(
                        expires_in={"type": "integer", "minimum": 1},
                        repositories=STRING,
                        scope=STRING,
                    )
                }
            },
        },
    )
