"""``If-None-Match`` against our ETag: RFC 9110 §13.1.2, with weak comparison.

One matcher for every front (``/v2/`` manifests, Maven files, the hot paths
of both), so a client's conditional GET gets the same 304 wherever it goes.

The header is ``*`` or a comma-separated list of entity-tags, each an
optional ``W/`` and a quoted opaque tag; a comma inside the quotes belongs to
the tag.  If-None-Match compares weakly (RFC 9110 §8.8.3.2): ``W/"x"`` and
``"x"`` are the same tag.  Beyond the grammar, as Docker's distribution
registry does, an unquoted element is read as the tag it spells
(``sha256:...`` for ``"sha256:..."``), and ``*`` matches wherever it stands
in the list; an element whose quote is never closed matches nothing.
"""

from __future__ import annotations

__all__ = ["ANY", "opaque_tag", "parse_if_none_match", "if_none_match_hits"]

#: what `parse_if_none_match` gives for ``*`` (any current representation)
ANY = None

_WHITESPACE = " \t"


def opaque_tag(etag: str) -> str:
    """The opaque tag of one entity-tag (``W/"x"``, ``"x"`` or a bare ``x``): ``x``, what weak comparison compares."""
    tag = etag.strip(_WHITESPACE)
    if tag.startswith("W/"):
        tag = tag[2:]
    if len(tag) >= 2 and tag[0] == '"' and tag[-1] == '"':
        return tag[1:-1]
    return tag


def parse_if_none_match(value: str | bytes) -> list[str] | None:
    """The opaque tags an ``If-None-Match`` value lists, in order; `ANY` (None) when it lists ``*``.

    Empty elements (``a,,b``, a trailing comma) are skipped, as RFC 9110's
    list rule allows; bytes are read as Latin-1 (obs-text is allowed in tags).
    """
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    tags: list[str] = []
    i, end = 0, len(text)
    while i < end:
        while i < end and (text[i] in _WHITESPACE or text[i] == ","):
            i += 1
        if i >= end:
            break
        start = i
        if text.startswith("W/", i):
            i += 2
        if i < end and text[i] == '"':
            close = text.find('"', i + 1)
            if close < 0:
                break  # an unclosed quote: the rest is no tag
            tags.append(text[i + 1 : close])
            i = close + 1
            comma = text.find(",", i)
            i = end if comma < 0 else comma  # (anything between the quote and the comma is ignored)
            continue
        comma = text.find(",", start)
        stop = end if comma < 0 else comma
        element = text[start:stop].strip(_WHITESPACE)
        if element == "*":
            return ANY
        tags.append(opaque_tag(element))
        i = stop
    return tags


def if_none_match_hits(header: str | bytes | None, etag: str | None) -> bool:
    """Whether ``If-None-Match: header`` matches the representation whose ETag is ``etag`` (so: 304).

    ``etag`` is our ETag header value (``"x"``, ``W/"x"``); None (no ETag) or
    no header never matches.
    """
    if not header or etag is None:
        return False
    tags = parse_if_none_match(header)
    if tags is ANY:
        return True
    return opaque_tag(etag) in tags
