"""Namespaces: which part of the repository name space an OCI upstream owns.

One cache fronts several registries.  A request reaches an upstream in one of
three ways:

- a path prefix, stripped before asking upstream (``/v2/quay/library/nginx``
  is ``library/nginx`` on the upstream whose ``prefix`` is ``quay``), as
  Harbor's proxy projects do;
- containerd's ``?ns=quay.io``, matched against the upstream's ``registry``
  host; the request is then filed under that upstream's prefix, so a pull by
  ``ns`` and a pull by prefix share their cache entries;
- neither (Docker's ``registry-mirrors``): the *default namespace*, where route
  globs and priorities pick the upstreams, as before namespaces existed.

A namespace's prefix defaults to its registry host.  The cache files tags,
manifests and negative entries under the *key* ``<prefix>/<name>`` (or the
bare name in the default namespace), which is also the name a client sees in
``_catalog``: a prefix owns every name under it, so keys of two namespaces
never collide, and rows written before namespaces existed are the default
namespace's as they are.  Blobs stay shared by digest.

Pure: imports no Twisted, so config parsing and the API validate with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

__all__ = [
    "UnknownRegistry",
    "check_namespaces",
    "check_prefix",
    "check_registry_host",
    "effective_prefix",
    "namespaced_key",
    "split_prefix",
]

_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_HOST_RE = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::[0-9]{1,5})?"
)


class UnknownRegistry(Exception):
    """A client named (containerd's ``?ns=``) a registry host that no upstream serves."""


class UpstreamLike(Protocol):
    """What namespace checks read of an upstream (a frozen config row fits)."""

    @property
    def name(self) -> str: ...
    @property
    def prefix(self) -> str | None: ...
    @property
    def registry(self) -> str | None: ...


def check_prefix(prefix: str) -> str | None:
    """Why ``prefix`` cannot be a namespace prefix (one repository-name component), or None."""
    if not isinstance(prefix, str) or not _COMPONENT_RE.fullmatch(prefix) or len(prefix) > 64:
        return f'{prefix!r} is not one lowercase repository-name component (e.g. "quay")'
    return None


def check_registry_host(host: str) -> str | None:
    """Why ``host`` is not a registry host as containerd sends it in ``ns`` (``quay.io``, ``reg:5000``)."""
    if not isinstance(host, str) or not _HOST_RE.fullmatch(host) or len(host) > 255:
        return f'{host!r} is not a lowercase registry host such as "quay.io"'
    return None


def effective_prefix(upstream: UpstreamLike) -> str | None:
    """The prefix that selects ``upstream``: its own, else its registry host when that is a
    valid prefix (``quay.io`` is; ``reg:5000`` is not), else None (routes only)."""
    if upstream.prefix:
        return upstream.prefix
    if upstream.registry and check_prefix(upstream.registry) is None:
        return upstream.registry
    return None


def check_namespaces(upstreams: Iterable[UpstreamLike]) -> str | None:
    """Why these upstreams do not form namespaces, or None.

    Upstreams sharing a prefix must name the same registry host and the
    other way round, so that a prefix and an ``ns`` value mean one set of
    upstreams; a registry host whose only prefix would contain ``:`` needs
    an explicit ``prefix``.
    """
    registry_of: dict[str, str | None] = {}
    prefix_of: dict[str, str | None] = {}
    for u in upstreams:
        prefix = effective_prefix(u)
        if u.registry and prefix is None:
            return f"{u.name}: registry {u.registry!r} cannot be a path prefix; set prefix"
        if prefix is not None:
            if prefix in registry_of and registry_of[prefix] != u.registry:
                return f"{u.name}: prefix {prefix!r} is already used for registry {registry_of[prefix]!r}"
            registry_of[prefix] = u.registry
        if u.registry:
            if u.registry in prefix_of and prefix_of[u.registry] != prefix:
                return f"{u.name}: registry {u.registry!r} already has prefix {prefix_of[u.registry]!r}"
            prefix_of[u.registry] = prefix
    return None


def split_prefix(key: str, prefixes: Iterable[str]) -> tuple[str | None, str]:
    """``("quay", "library/nginx")`` for ``quay/library/nginx`` when ``quay`` is a prefix;
    ``(None, key)`` otherwise (the default namespace)."""
    head, sep, rest = key.partition("/")
    if sep and rest and head in set(prefixes):
        return head, rest
    return None, key


def namespaced_key(prefix: str | None, name: str) -> str:
    """The key a name is filed under in a namespace (``prefix/name``; the bare name by default)."""
    return f"{prefix}/{name}" if prefix else name
