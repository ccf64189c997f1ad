"""The console's entries, images and tags lists, one keyset page at a time (`http.cursors`).

`ConsoleApi.entries`, `images` and `image_tags` answer through these: each
reads ``limit`` rows (one more, to know whether there is a next page) from an
index seek, so the cost and the size of a response do not grow with the
number of entries, repositories or tags the cache holds (issue 30).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harbor_cache.core.seams import ImageRepository
from harbor_cache.errors import BadRequest, NameUnknown
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.http.cursors import cursor_arg, decode_cursor, encode_cursor
from harbor_cache.http.request import HarborRequest

if TYPE_CHECKING:
    from harbor_cache.api.console import ConsoleApi

#: images and tags per page: default and most
IMAGES_PAGE, IMAGES_MAX = 100, 500


async def entries_page(console: ConsoleApi, request: HarborRequest) -> dict[str, Any]:
    """GET /api/v1/cache/entries: ``cursor`` (from ``next``) seeks; ``offset`` steps (kept for compatibility)."""
    from harbor_cache.api.console import choice_arg, entry_view, page_args, query_arg

    queries = console.queries
    offset, limit = page_args(request)
    sort = choice_arg(request, "sort", queries.ENTRY_SORTS) or "last_access"
    order = choice_arg(request, "order", {"asc", "desc"}, "desc") or "desc"
    filters = {
        "front": choice_arg(request, "front", {"oci", "maven"}),
        "kind": choice_arg(request, "kind", {"proxy", "hosted"}),
        "repository": query_arg(request, "repository"),
        "text": query_arg(request, "q"),
    }
    cap = int(console.settings.get("console.entries_count_max"))
    raw = cursor_arg(request)
    if raw is not None:
        want = (str,) if sort == "repository" else (int, float)
        cursor_sort, cursor_order, value, last_id = decode_cursor(raw, str, str, want, int)
        if (cursor_sort, cursor_order) != (sort, order):
            raise BadRequest("the cursor belongs to another sort order", {"sort": cursor_sort, "order": cursor_order})
        rows = await queries.cache_entries_after(
            sort=sort, descending=order == "desc", after=(value, last_id), limit=limit + 1, **filters
        )
        total, capped = await queries.count_entries_capped(cap, **filters)
    else:
        counted, rows = await queries.cache_entries_page(
            offset=offset, limit=limit + 1, sort=sort, descending=order == "desc", count_cap=cap + 1, **filters
        )
        total, capped = min(counted, cap), counted > cap
    more, rows = len(rows) > limit, rows[:limit]
    column = queries.ENTRY_SORTS[sort]
    views = [entry_view(r) for r in rows]
    await console._name_blobs(views)
    return {
        "total": total,
        "total_capped": capped,
        "offset": offset,
        "limit": limit,
        "sort": sort,
        "order": order,
        "entries": views,
        "next": encode_cursor(sort, order, getattr(rows[-1], column), rows[-1].id) if more else None,
    }


def _limit_and_last(request: HarborRequest) -> tuple[int, str]:
    from harbor_cache.api.console import int_arg

    limit = int_arg(request, "limit", IMAGES_PAGE, 1, IMAGES_MAX)
    raw = cursor_arg(request)
    return limit, (decode_cursor(raw, str)[0] if raw is not None else "")


#: most rounds of names one filtered page reads before answering what it found (with ``next``)
MAX_ROUNDS = 10


async def visible_names(
    names_after: Callable[[str, int], Any], last: str, limit: int, visible: Callable[[str], bool] | None
) -> tuple[list[str], str | None]:
    """(up to ``limit`` names after ``last`` that ``visible`` allows, where the next page starts or None).

    ``names_after(last, n)`` answers the next ``n`` names in order; a caller
    who sees everything needs one round, others read rounds of at least 200
    names until the page is full or the names run out - never the whole
    list, and at most `MAX_ROUNDS` rounds: a caller who may pull a few of
    many repositories gets a short (even empty) page and a ``next`` that
    continues the scan from where it stopped.
    """
    batch = limit + 1 if visible is None else max(limit + 1, 200)
    found: list[str] = []
    cursor = last
    for _ in range(MAX_ROUNDS):
        page = await names_after(cursor, batch)
        found += [n for n in page if visible is None or visible(n)]
        if len(found) > limit:
            return found[:limit], found[limit - 1]
        if len(page) < batch:
            return found, None
        cursor = page[-1]
    return found, cursor


async def images_page(
    console: ConsoleApi, request: HarborRequest, visible: Callable[[str], bool] | None
) -> dict[str, Any]:
    """GET /api/v1/images: ``limit`` repositories by name after ``cursor``, counted one index range each.

    Names come from a skip-scan of the index (`list_repositories_page`),
    filtered by what the caller may pull in bounded rounds; keys with one
    upstream identity (`OciCache.image_identity`) merge into one row when they
    fall on the same page.
    """
    limit, last = _limit_and_last(request)
    queries = console.queries
    names, resume = await visible_names(queries.list_repositories_page, last, limit, visible)
    groups: dict[tuple[str, str], list[ImageRepository]] = {}
    for r in await queries.image_repositories_page(names):
        groups.setdefault(console._identity(r.name), []).append(r)
    merged = [r.name for members in groups.values() if len(members) > 1 for r in members]
    contents = await queries.repository_contents(merged) if merged else {}
    repos = []
    for (registry, image), members in groups.items():
        primary = min(members, key=lambda r: (-(r.hosted_tags + r.cached_tags), len(r.name), r.name))
        if len(members) > 1:
            tag_count = len(set().union(*(contents.get(m.name, (set(), set()))[0] for m in members)))
            manifest_count = len(set().union(*(contents.get(m.name, (set(), set()))[1] for m in members)))
        else:
            tag_count = primary.hosted_tags + primary.cached_tags
            manifest_count = primary.hosted_manifests + primary.cached_manifests
        repos.append(
            {
                "name": primary.name,
                "registry": registry,
                "image": image,
                "paths": sorted(m.name for m in members),
                "hosted": any(m.hosted_tags or m.hosted_manifests for m in members),
                "cached": any(m.cached_tags or m.cached_manifests for m in members),
                "tag_count": tag_count,
                "manifest_count": manifest_count,
                "updated_at": iso8601(max(m.updated_at for m in members) or None),
            }
        )
    repos.sort(key=lambda r: (r["image"], r["registry"]))
    return {"repositories": repos, "next": encode_cursor(resume) if resume is not None else None}


async def tags_page(console: ConsoleApi, request: HarborRequest) -> dict[str, Any]:
    """GET /api/v1/images/tags: ``limit`` tags by name after ``cursor``, with what each points at."""
    name = console.repository_arg(request)
    limit, last = _limit_and_last(request)
    rows = await console.queries.image_tags_page(name, last, limit + 1)
    if not rows and not last and not await console.queries.repository_known(name):
        raise NameUnknown("repository name not known to this cache", {"repository": name})
    more, rows = len(rows) > limit, rows[:limit]
    return {
        "repository": name,
        "tags": [
            {
                "tag": r.tag,
                "digest": r.digest,
                "kind": "hosted" if r.kind == "hosted" else "cached",
                "media_type": r.media_type,
                "size": r.size,
                "updated_at": iso8601(r.updated_at),
                "pull": console.pull_lines(request, name, r.tag),
            }
            for r in rows
        ],
        "next": encode_cursor(rows[-1].tag) if more else None,
    }
