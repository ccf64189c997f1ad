"""What a search query means, who sees what, and how a page of hits is shaped (``GET /api/v1/search``).

A query is one of three forms:

* Maven coordinates, Nexus / Maven Central style: ``g:org.example a:lib v:1.*``
  (any of the three, ``*`` a wildcard): Maven files whose path is
  ``<group as dirs>/<artifact>/<version>/...``;
* a digest, ``sha256:<hex>`` (the full digest or a prefix of its hex): manifests;
* anything else, free text: repositories, tags (``repository:tag``), manifests (hex) and
  Maven paths (slashes or dots) that contain it.  Under 3 characters the trigram index
  cannot answer a substring, so a short query matches prefixes only.

Hits are ranked exact name, then name prefix, then anything else, then the
most recently written first; pages are keyset pages with an opaque cursor.
Who may search is who may read the management API; hits are limited to what
the caller may pull (`auth.permissions.Permissions`): OCI names their grants
cover; Maven repositories marked ``private`` are left out unless the caller
is a server admin (docs/security.md).  A caller who may pull every OCI name
costs no filtering.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol
from urllib.parse import urlencode

from harbor_cache.auth.permissions import Permissions
from harbor_cache.errors import BadRequest
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.index.search import SearchHit, SearchKey, SearchMatch

KINDS = ("image", "tag", "manifest", "maven")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_QUERY = 256
_COORDINATE = re.compile(r"^([gav]):(.*)$", re.IGNORECASE)
_DIGEST = re.compile(r"^sha256:([0-9a-f]{1,64})$")


class SearchIndex(Protocol):
    """The index seam this module needs (`harbor_cache.index.search.SearchStore`)."""

    async def search(
        self,
        match: SearchMatch,
        *,
        kinds: Sequence[str] = (),
        hidden_maven: Sequence[str] = (),
        after: SearchKey | None = None,
        limit: int = 20,
    ) -> list[SearchHit]: ...


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: the index match, the kinds it may return, and Maven coordinates to check."""

    match: SearchMatch
    kinds: tuple[str, ...]
    coordinates: dict[str, str]


def parse_query(q: str) -> Query:
    """The meaning of ``q`` (see the module doc); BadRequest for an empty or unusable query."""
    q = q.strip()
    if not q:
        raise BadRequest("q: a search needs at least one character")
    if len(q) > MAX_QUERY:
        raise BadRequest(f"q: at most {MAX_QUERY} characters")
    words = q.split()
    coordinates: dict[str, str] = {}
    for word in words:
        m = _COORDINATE.match(word)
        if m is not None and m.group(2):
            coordinates[m.group(1).lower()] = m.group(2).lower()
    if coordinates:
        if len(coordinates) != len(words):
            raise BadRequest("q: g:, a: and v: cannot be mixed with free text or repeated")
        return Query(_coordinates_match(coordinates), ("maven",), coordinates)
    lowered = q.lower()
    digest = _DIGEST.match(lowered)
    if digest is not None:
        hex_ = digest.group(1)
        return Query(_text_match(hex_, hex_), ("manifest",), {})
    return Query(_text_match(lowered, lowered), (), {})


def _text_match(text: str, exact: str) -> SearchMatch:
    if len(text) < 3:
        return SearchMatch(exact=exact, starts=text)
    return SearchMatch(exact=exact, contains=text)


def _like(value: str) -> str:
    return value.replace("%", "").replace("*", "%")


def _coordinates_match(coordinates: dict[str, str]) -> SearchMatch:
    group = _like(coordinates["g"]).replace(".", "/") if "g" in coordinates else "%"
    artifact = _like(coordinates.get("a", "*"))
    version = _like(coordinates.get("v", "*"))
    # The path's head is <group>/<artifact>/<version>/; without a group it is anywhere after a slash.
    head = f"{group}/{artifact}/{version}/%" if "g" in coordinates else f"%/{artifact}/{version}/%"
    return SearchMatch(exact=coordinates.get("a", ""), like=head.replace("%%", "%"))


def maven_coordinates(path: str) -> tuple[str, str, str] | None:
    """``(groupId, artifactId, version)`` of a Maven file's path, None for a path too short to be one."""
    parts = path.split("/")
    if len(parts) < 4:
        return None
    return ".".join(parts[:-3]), parts[-3], parts[-2]


def _coordinates_hold(path: str, coordinates: dict[str, str]) -> bool:
    gav = maven_coordinates(path)
    if gav is None:
        return False
    for key, value in zip("gav", gav, strict=True):
        wanted = coordinates.get(key)
        if wanted is not None and not fnmatchcase(value.lower(), wanted):
            return False
    return True


def encode_cursor(key: SearchKey) -> str:
    raw = json.dumps([key[0], key[1], key[2]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> SearchKey:
    """The page end a cursor names; BadRequest for anything `encode_cursor` did not write."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        rank, at, last = json.loads(raw)
        if not (isinstance(rank, int) and isinstance(at, int | float) and isinstance(last, int)):
            raise ValueError(cursor)
        # bounded so a forged cursor is a 400, never a 64-bit overflow in the database (a 500)
        if not (0 <= rank <= 2 and math.isfinite(at) and 0 <= last < 2**63):
            raise ValueError(cursor)
        return rank, float(at), last
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as e:
        raise BadRequest("cursor: not a cursor this server returned") from e


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"limit: an integer from 1 to {MAX_LIMIT}")
    return int(value)


def console_link(hit: SearchHit) -> str:
    """The console page of a hit: the image page, or the Maven browser on the file."""
    if hit.kind == "maven":
        directory = hit.src.rsplit("/", 1)[0] if "/" in hit.src else ""
        return "/ui/#/maven?" + urlencode({"repo": hit.repository, "path": directory, "file": hit.src})
    params = {"repo": hit.repository}
    if hit.kind == "tag":
        params["ref"] = hit.src
    elif hit.kind == "manifest":
        params["ref"] = hit.src
    return "/ui/#/images?" + urlencode(params)


def hit_view(hit: SearchHit) -> dict[str, Any]:
    """One result as ``/api/v1/search`` answers it."""
    view: dict[str, Any] = {
        "kind": hit.kind,
        "repository": hit.repository,
        "name": hit.repository,
        "version": None,
        "tag": None,
        "digest": hit.digest,
        "size": hit.size,
        "hosted": bool(hit.hosted),
        "updated_at": iso8601(hit.updated_at),
        "link": console_link(hit),
    }
    if hit.kind == "tag":
        view["tag"] = hit.src
    elif hit.kind == "manifest":
        view["digest"] = hit.src
    elif hit.kind == "maven":
        gav = maven_coordinates(hit.src)
        view["path"] = hit.src
        view["group"], view["name"], view["version"] = gav if gav is not None else ("", hit.name, None)
    return view


class Search:
    """Runs a query for a caller: parse, page, filter what the caller may not see, shape."""

    def __init__(self, index: SearchIndex, private_maven: Iterable[str] = ()) -> None:
        self.index = index
        self.private_maven = tuple(private_maven)

    @staticmethod
    def _visible(permissions: Permissions, hit: SearchHit) -> bool:
        """OCI hits the caller may pull; Maven hits stay as before (public repositories, private ones to admins)."""
        return hit.kind == "maven" or permissions.may_oci("pull", hit.repository)

    async def run(
        self,
        q: str,
        *,
        is_admin: bool,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
        kind: str | None = None,
        permissions: Permissions | None = None,
    ) -> dict[str, Any]:
        """``{"results": [...], "next": cursor or None}`` for one page of ``q``.

        With ``permissions``, only OCI hits the caller may pull (a page may
        then hold fewer than ``limit`` hits; ``next`` still pages on);
        ``is_admin`` decides whether private Maven repositories show.
        """
        query = parse_query(q)
        kinds = query.kinds
        if kind is not None:
            if kind not in KINDS:
                raise BadRequest(f"kind: one of {', '.join(KINDS)}")
            if kinds and kind not in kinds:
                return {"results": [], "next": None}
            kinds = (kind,)
        after = decode_cursor(cursor) if cursor else None
        hits = await self.index.search(
            query.match,
            kinds=kinds,
            hidden_maven=() if is_admin else self.private_maven,
            after=after,
            limit=limit + 1,
        )
        page, more = hits[:limit], len(hits) > limit
        # Maven coordinates are matched exactly here: the LIKE on the index may let a near miss through.
        shown = [h for h in page if not query.coordinates or _coordinates_hold(h.src, query.coordinates)]
        if permissions is not None and not is_admin:
            if not permissions.sees_everything(maven=False):
                shown = [h for h in shown if self._visible(permissions, h)]
        last = page[-1] if page else None
        return {
            "results": [hit_view(h) for h in shown],
            "next": encode_cursor((last.rank, last.updated_at, last.id)) if more and last is not None else None,
        }
