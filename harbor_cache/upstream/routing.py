"""Which upstream serves a repository, and under what name.

Routes are ``fnmatch`` globs on the repository name, matched case-sensitively
(names are lowercase anyway); ``*`` crosses ``/`` so ``"*"`` routes
everything and ``"ghcr/*"`` covers ``ghcr/a/b``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

__all__ = ["route_matches", "upstream_repository_name"]


def route_matches(patterns: list[str], name: str) -> bool:
    """True when any glob in ``patterns`` matches ``name``."""
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def upstream_repository_name(name: str, library_prefix: bool) -> str:
    """The name to ask upstream for: ``nginx`` becomes ``library/nginx``
    when ``library_prefix`` is on (Docker Hub's official images)."""
    if library_prefix and "/" not in name:
        return f"library/{name}"
    return name
