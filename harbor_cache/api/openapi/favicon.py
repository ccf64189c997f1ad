"""/favicon.ico: browsers ask it of every site unprompted; it redirects to the console's SVG icon."""

from __future__ import annotations

from harbor_cache.api.openapi.common import operation

SCHEMAS: dict = {}


def paths() -> dict:
    """The favicon's path (public: a browser asks before anyone logs in)."""
    return {
        "/favicon.ico": {
            "get": operation(
                "favicon",
                "The site icon: a redirect to /ui/favicon.svg",
                {"302": {"description": "Location: /ui/favicon.svg (image/svg+xml)"}},
                tag="health",
                security=[],
            )
        }
    }
