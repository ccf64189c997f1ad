"""Grants: who may do what where, as pure data and pure decisions (no I/O, no Twisted).

A grant is ``{"repositories": <pattern>, "actions": [...]}``:

* an OCI pattern is a glob over repository names: ``*`` matches any run of
  characters, ``/`` included (``team-a/*`` covers ``team-a/app`` and
  ``team-a/tools/lint``), ``?`` one character; anything else matches itself;
* a Maven pattern is ``maven:<repository id>`` (the whole repository) or
  ``maven:<repository id>/<path prefix>`` (a directory and everything below
  it: ``maven:releases/com/example`` covers ``com/example/lib/1.0/lib-1.0.jar``
  and not ``com/examples/``); the id ``*`` is every Maven repository.

Actions are ``pull``, ``push``, ``delete`` and ``admin``; ``admin`` on a
pattern implies the other three there and lets its holder hand out grants
within it (robot accounts).

The three roles are shorthands for global grants, so configurations made
before grants keep their meaning: ``read-only`` pulls everything,
``read-write`` pulls, pushes and deletes everything, ``admin`` does that and
runs the server (the management API's admin operations).  A user's
permissions are the union of the role's grants, the user's own grants and
those of every group the user is in (`Permissions.of`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

ACTIONS = ("pull", "push", "delete", "admin")
#: what ``admin`` on a pattern implies there
_IMPLIED_BY_ADMIN = frozenset(ACTIONS)
MAVEN_PREFIX = "maven:"
#: the longest pattern a grant may hold, and the most grants one holder may have
MAX_PATTERN_LENGTH = 512
MAX_GRANTS = 200

_ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(ACTIONS),
    "read-write": frozenset({"pull", "push", "delete"}),
    "read-only": frozenset({"pull"}),
}


class GrantError(ValueError):
    """A grant (or list of them) that is not well formed; the message says what is wrong, for a 400."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One grant: a pattern (OCI glob, or ``maven:<id>[/<prefix>]``) and the actions allowed there."""

    repositories: str
    actions: frozenset[str]

    @property
    def is_maven(self) -> bool:
        return self.repositories.startswith(MAVEN_PREFIX)

    def maven_parts(self) -> tuple[str, str]:
        """(repository id, path prefix without slashes at either end; "" for the whole repository)."""
        rest = self.repositories[len(MAVEN_PREFIX) :]
        repo, _, prefix = rest.partition("/")
        return repo, prefix.strip("/")

    def allowed(self) -> frozenset[str]:
        """The actions this grant allows, with what ``admin`` implies spelled out."""
        return _IMPLIED_BY_ADMIN if "admin" in self.actions else self.actions

    def as_json(self) -> dict[str, object]:
        return {"repositories": self.repositories, "actions": [a for a in ACTIONS if a in self.actions]}


# -- parsing -----------------------------------------------------------------------------------


def _check_pattern(pattern: object) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise GrantError("grant repositories must be a non-empty string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise GrantError(f"grant repositories longer than {MAX_PATTERN_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() for c in pattern):
        raise GrantError("grant repositories may not contain whitespace or control characters")
    if pattern.startswith(MAVEN_PREFIX):
        repo, _, prefix = pattern[len(MAVEN_PREFIX) :].partition("/")
        if not repo:
            raise GrantError(f"grant repositories {pattern!r}: maven: needs a repository id (or *)")
        if repo != "*" and ("*" in repo or "?" in repo):
            raise GrantError(f"grant repositories {pattern!r}: a Maven repository id is a name or *")
        if "*" in prefix or "?" in prefix:
            raise GrantError(f"grant repositories {pattern!r}: a Maven path prefix takes no wildcards")
        if any(part in (".", "..") for part in prefix.split("/")):
            raise GrantError(f"grant repositories {pattern!r}: a Maven path prefix may not hold . or ..")
    return pattern


def parse_grant(value: object) -> Grant:
    """One grant from its JSON form; `GrantError` naming what is wrong."""
    if not isinstance(value, dict):
        raise GrantError('a grant is an object {"repositories": ..., "actions": [...]}')
    unknown = sorted(set(value) - {"repositories", "actions"})
    if unknown:
        raise GrantError("unknown grant field: " + ", ".join(unknown))
    pattern = _check_pattern(value.get("repositories"))
    actions = value.get("actions")
    if not isinstance(actions, list) or not actions:
        raise GrantError("grant actions must be a non-empty list")
    bad = [a for a in actions if not isinstance(a, str) or a not in ACTIONS]
    if bad:
        raise GrantError(f"unknown grant action: {', '.join(map(str, bad))} (one of {', '.join(ACTIONS)})")
    return Grant(pattern, frozenset(actions))


def parse_grants(value: object) -> tuple[Grant, ...]:
    """A list of grants from JSON (the API's ``grants`` field); `GrantError` for anything malformed."""
    if not isinstance(value, list):
        raise GrantError("grants must be a list")
    if len(value) > MAX_GRANTS:
        raise GrantError(f"at most {MAX_GRANTS} grants")
    return tuple(parse_grant(v) for v in value)


def load_grants(text: str | None) -> tuple[Grant, ...]:
    """Grants as stored (`dump_grants`); what cannot be read grants nothing (fails closed)."""
    if not text:
        return ()
    try:
        return parse_grants(json.loads(text))
    except (ValueError, TypeError):
        return ()


def dump_grants(grants: Iterable[Grant]) -> str:
    """The stored form: compact JSON, actions in `ACTIONS` order."""
    return json.dumps([g.as_json() for g in grants], separators=(",", ":"))


def grants_json(grants: Iterable[Grant]) -> list[dict[str, object]]:
    return [g.as_json() for g in grants]


def role_grants(role: str | None) -> tuple[Grant, ...]:
    """The global grants a role stands for ("none", unknown or None: nothing)."""
    actions = _ROLE_ACTIONS.get(role or "")
    if not actions:
        return ()
    return (Grant("*", actions), Grant(MAVEN_PREFIX + "*", actions))


# -- matching ----------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    parts = []
    for c in pattern:
        parts.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
    return re.compile("".join(parts), re.DOTALL)


def oci_matches(pattern: str, repository: str) -> bool:
    """True when an OCI pattern covers the repository name."""
    if pattern.startswith(MAVEN_PREFIX):
        return False
    if pattern == "*":
        return True
    return _glob(pattern).fullmatch(repository) is not None


def _under(prefix: str, path: str) -> bool:
    path = path.strip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def maven_matches(grant: Grant, repository_id: str, path: str = "") -> bool:
    """True when a Maven grant covers ``path`` in ``repository_id`` ("" for the repository as a whole)."""
    if not grant.is_maven:
        return False
    repo, prefix = grant.maven_parts()
    return (repo == "*" or repo == repository_id) and _under(prefix, path)


def _pattern_covers(outer: str, inner: str) -> bool:
    """True when every name ``inner`` matches is also matched by ``outer`` (decided conservatively).

    Exact for equal patterns, ``*``, and patterns whose only wildcard is one
    trailing ``*`` (``team-a/*``); any other ``outer`` covers only itself.
    """
    if outer == inner or outer == "*":
        return True
    if outer.endswith("*") and not any(c in "*?" for c in outer[:-1]):
        return inner.startswith(outer[:-1])
    if not any(c in "*?" for c in inner):
        return oci_matches(outer, inner)
    return False


def grant_covers(outer: Grant, inner: Grant) -> bool:
    """True when ``outer`` allows every action of ``inner`` everywhere ``inner`` applies."""
    if not inner.allowed() <= outer.allowed():
        return False
    if inner.is_maven != outer.is_maven:
        return False
    if inner.is_maven:
        orepo, oprefix = outer.maven_parts()
        irepo, iprefix = inner.maven_parts()
        return (orepo == "*" or orepo == irepo) and _under(oprefix, iprefix)
    return _pattern_covers(outer.repositories, inner.repositories)


@dataclass(frozen=True, slots=True)
class Permissions:
    """Everything one caller may do: the union of their grants; ``server_admin`` runs the server."""

    grants: tuple[Grant, ...] = ()
    server_admin: bool = False

    @classmethod
    def of(cls, role: str | None, *grant_lists: Iterable[Grant], group_roles: Iterable[str | None] = ()) -> Permissions:
        """A user's permissions: their role's grants, their own, their groups' grants and roles' grants."""
        roles = [role, *group_roles]
        grants: list[Grant] = []
        for r in roles:
            grants.extend(role_grants(r))
        for gl in grant_lists:
            grants.extend(gl)
        return cls(tuple(dict.fromkeys(grants)), server_admin="admin" in roles)

    @classmethod
    def anonymous(cls, anonymous_pull: bool) -> Permissions:
        """The caller with no credentials: pull everything when anonymous pull is on, else nothing."""
        if not anonymous_pull:
            return cls()
        pull = frozenset({"pull"})
        return cls((Grant("*", pull), Grant(MAVEN_PREFIX + "*", pull)))

    def oci_actions(self, repository: str) -> frozenset[str]:
        """The actions (pull, push, delete, admin) allowed on one OCI repository."""
        allowed: set[str] = set()
        for g in self.grants:
            if oci_matches(g.repositories, repository):
                allowed |= g.allowed()
        return frozenset(allowed)

    def maven_actions(self, repository_id: str, path: str = "") -> frozenset[str]:
        """The actions allowed on ``path`` in one Maven repository ("": the repository as a whole)."""
        allowed: set[str] = set()
        for g in self.grants:
            if maven_matches(g, repository_id, path):
                allowed |= g.allowed()
        return frozenset(allowed)

    def may_oci(self, action: str, repository: str) -> bool:
        return self.server_admin or action in self.oci_actions(repository)

    def may_maven(self, action: str, repository_id: str, path: str = "") -> bool:
        return self.server_admin or action in self.maven_actions(repository_id, path)

    def may_anywhere(self, action: str, *, maven: bool | None = None) -> bool:
        """True when some grant allows ``action`` somewhere (of one kind when ``maven`` is given).

        For what a console offers (a push button, a robots page) and for
        listings that first ask whether to filter at all.
        """
        if self.server_admin:
            return True
        return any(action in g.allowed() and (maven is None or g.is_maven == maven) for g in self.grants)

    def sees_everything(self, *, maven: bool) -> bool:
        """True when ``pull`` is granted on every name of a kind, so a listing needs no filtering."""
        if self.server_admin:
            return True
        everything = MAVEN_PREFIX + "*" if maven else "*"
        return any(g.repositories == everything and "pull" in g.allowed() for g in self.grants)

    def covers(self, grants: Iterable[Grant]) -> list[Grant]:
        """The grants among ``grants`` that are wider than these permissions ([] when all are covered)."""
        if self.server_admin:
            return []
        return [g for g in grants if not any(grant_covers(mine, g) for mine in self.grants)]
