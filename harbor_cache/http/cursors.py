"""Opaque cursors of keyset pages: the console's entries, images and tags lists, and Maven browse.

A page answers ``next``: an opaque cursor (URL-safe base64 of a JSON list
naming where the page stopped), passed back as ``cursor`` for the next page,
or null on the last one.  The index seeks to it (`index.listings`), so a page
costs the same at any depth, and no response holds more than ``limit`` rows
(issue 30).  ``offset`` still works on the entries list for clients that page
by number, but steps over the rows before it; ``next`` is offered there too.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from harbor_cache.errors import BadRequest
from harbor_cache.grammar.client_text import is_clean_text
from harbor_cache.http.request import HarborRequest

#: longest cursor accepted (a Maven key of up to ~2 KiB, base64 of JSON)
MAX_CURSOR = 4096


def encode_cursor(*values: Any) -> str:
    """The opaque cursor for ``values`` (strings and numbers)."""
    text = json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _bad(raw: str) -> BadRequest:
    return BadRequest("invalid cursor: pass back the next value of the previous page", {"cursor": raw[:64]})


def decode_cursor(raw: str, *shape: type | tuple[type, ...]) -> list[Any]:
    """The values of a cursor from `encode_cursor`, each an instance of the type ``shape`` names; 400 otherwise."""
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        values = json.loads(text)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad(raw) from None
    if not isinstance(values, list) or len(values) != len(shape):
        raise _bad(raw)
    for value, kind in zip(values, shape, strict=True):
        if isinstance(value, bool) or not isinstance(value, kind):
            raise _bad(raw)
        if isinstance(value, str) and not is_clean_text(value):
            raise _bad(raw)
    return values


def cursor_arg(request: HarborRequest, name: str = "cursor") -> str | None:
    """The raw ``cursor`` query argument (None when absent or empty); 400 when it cannot be one."""
    values = request.args.get(name.encode())
    if not values or not values[0]:
        return None
    raw = values[0]
    if len(raw) > MAX_CURSOR:
        raise BadRequest(f"{name} is longer than {MAX_CURSOR} characters")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise _bad(repr(raw)) from None
