"""What a sync rule (scheduled pre-fetch) may say, and the pure decisions of a run: which tags, which platforms.

An OCI rule names one upstream, the repositories (cache keys, as clients pull
them) and tag globs; ``newest`` keeps only the N newest matching tags, and
``platforms`` narrows an image index to the platforms the fleet runs.  A
Maven rule names a proxy Maven repository and ``group:artifact`` pairs whose
``maven-metadata.xml`` is fetched.  Both have ``interval_seconds`` (at least
``sync.min_interval_seconds``: an operator typo must not hammer an upstream)
and ``enabled``.  Everything here is pure, so the rules and the tag choice
are tested without a reactor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from harbor_cache.errors import BadRequest
from harbor_cache.grammar.policy_globs import BadPattern, check_pattern, matches

MAX_REPOSITORIES = 100
MAX_TAG_GLOBS = 100
MAX_PLATFORMS = 32
MAX_ARTIFACTS = 500
MAX_NEWEST = 10_000
MAX_INTERVAL = 30 * 86400

_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_PLATFORM = re.compile(r"[a-z0-9_.-]+/[a-z0-9_.-]+(?:/[a-z0-9_.-]+)?")
_COORDINATE = re.compile(r"[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+")
# A leading version: 3, 3.12, v3.12.1, 3.12.1-slim, 1.2.3+build (the rest is a suffix).
_VERSION = re.compile(r"v?(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?(?:[-+_.].*)?")


@dataclass(frozen=True)
class SyncRule:
    """A validated rule (`parse_rule`); ``kind`` is "oci" or "maven"."""

    kind: str
    interval_seconds: int
    enabled: bool
    upstream: str = ""
    repositories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    newest: int | None = None
    platforms: tuple[str, ...] = ()
    maven_repository: str = ""
    artifacts: tuple[str, ...] = ()

    def spec(self) -> dict[str, Any]:
        """The fields stored in the index (``interval_seconds`` and ``enabled`` are columns)."""
        if self.kind == "maven":
            return {"maven_repository": self.maven_repository, "artifacts": list(self.artifacts)}
        return {
            "upstream": self.upstream,
            "repositories": list(self.repositories),
            "tags": list(self.tags),
            "newest": self.newest,
            "platforms": list(self.platforms),
        }

    @classmethod
    def from_stored(cls, kind: str, spec: dict[str, Any], interval_seconds: int, enabled: bool) -> SyncRule:
        """A rule as the index holds it (validated when written, so trusted here)."""
        if kind == "maven":
            return cls(
                "maven",
                interval_seconds,
                enabled,
                maven_repository=str(spec.get("maven_repository", "")),
                artifacts=tuple(spec.get("artifacts") or ()),
            )
        return cls(
            "oci",
            interval_seconds,
            enabled,
            upstream=str(spec.get("upstream", "")),
            repositories=tuple(spec.get("repositories") or ()),
            tags=tuple(spec.get("tags") or ()),
            newest=spec.get("newest"),
            platforms=tuple(spec.get("platforms") or ()),
        )


def _string_list(value: object, field: str, limit: int, *, required: bool) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > limit:
        raise BadRequest(f"{field}: expected a list of at most {limit} strings")
    if required and not value:
        raise BadRequest(f"{field}: at least one is needed")
    return list(value)


def parse_rule(body: dict[str, Any], min_interval: int) -> SyncRule:
    """A rule from a request body; BadRequest saying which field is wrong (names are checked by the caller)."""
    interval = body.get("interval_seconds")
    if isinstance(interval, bool) or not isinstance(interval, int) or not min_interval <= interval <= MAX_INTERVAL:
        raise BadRequest(
            f"interval_seconds: expected an integer from {min_interval} (sync.min_interval_seconds) to {MAX_INTERVAL}"
        )
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise BadRequest("enabled: expected true or false")
    if "maven_repository" in body:
        if "upstream" in body:
            raise BadRequest("a rule has either upstream (OCI) or maven_repository (Maven), not both")
        repository = body["maven_repository"]
        if not isinstance(repository, str) or not repository:
            raise BadRequest("maven_repository: expected the name of a proxy Maven repository")
        artifacts = _string_list(body.get("artifacts"), "artifacts", MAX_ARTIFACTS, required=True)
        for a in artifacts:
            if not _COORDINATE.fullmatch(a):
                raise BadRequest(f"artifacts: {a[:100]!r} is not group:artifact")
        return SyncRule("maven", interval, enabled, maven_repository=repository, artifacts=tuple(artifacts))
    upstream = body.get("upstream")
    if not isinstance(upstream, str) or not upstream:
        raise BadRequest("upstream: expected the name of an OCI upstream (or maven_repository for a Maven rule)")
    repositories = _string_list(body.get("repositories"), "repositories", MAX_REPOSITORIES, required=True)
    for r in repositories:
        if len(r) > 255 or not _REPOSITORY.fullmatch(r):
            raise BadRequest(f"repositories: {r[:100]!r} is not a repository name")
    try:
        tags = [
            check_pattern(t, "tags", tag=True)
            for t in _string_list(body.get("tags"), "tags", MAX_TAG_GLOBS, required=True)
        ]
    except BadPattern as e:
        raise BadRequest(str(e)) from None
    newest = body.get("newest")
    if newest is not None and (
        isinstance(newest, bool) or not isinstance(newest, int) or not 1 <= newest <= MAX_NEWEST
    ):
        raise BadRequest(f"newest: expected an integer from 1 to {MAX_NEWEST}, or null")
    platforms = _string_list(body.get("platforms"), "platforms", MAX_PLATFORMS, required=False)
    for p in platforms:
        if not _PLATFORM.fullmatch(p):
            raise BadRequest(f"platforms: {p[:100]!r} is not os/architecture[/variant]")
    return SyncRule(
        "oci",
        interval,
        enabled,
        upstream=upstream,
        repositories=tuple(repositories),
        tags=tuple(tags),
        newest=newest,
        platforms=tuple(platforms),
    )


def version_key(tag: str) -> tuple[int, ...] | None:
    """The numbers of a tag's leading version (``3.12.1-slim`` -> (3, 12, 1)); None for a tag without one."""
    m = _VERSION.fullmatch(tag)
    if m is None:
        return None
    return tuple(int(g) if g is not None else 0 for g in m.groups())


def newest_first(tags: list[str]) -> list[str]:
    """Tags by version, newest first (equal versions by name); tags without a version after, by name."""
    versioned = [(k, t) for t in tags if (k := version_key(t)) is not None]
    versioned.sort(key=lambda kt: (tuple(-n for n in kt[0]), kt[1]))
    plain = sorted(t for t in tags if version_key(t) is None)
    return [t for _, t in versioned] + plain


def select_tags(available: list[str], globs: tuple[str, ...], newest: int | None) -> list[str]:
    """The tags a run fetches: those matching any glob, newest first, only the first ``newest`` when set."""
    chosen = newest_first([t for t in set(available) if any(matches(t, g) for g in globs)])
    return chosen[:newest] if newest is not None else chosen


def platform_of(descriptor: dict[str, Any]) -> str | None:
    """``os/architecture[/variant]`` of an index entry; None when it names none."""
    platform = descriptor.get("platform")
    if not isinstance(platform, dict):
        return None
    os_, arch = platform.get("os"), platform.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str):
        return None
    variant = platform.get("variant")
    return f"{os_}/{arch}/{variant}" if isinstance(variant, str) and variant else f"{os_}/{arch}"


def wanted_platform(descriptor: dict[str, Any], platforms: tuple[str, ...]) -> bool:
    """Whether an index entry is fetched: every entry without a filter; else one whose platform is listed
    (``linux/arm64`` also takes ``linux/arm64/v8``; entries without a platform, e.g. attestations, are skipped)."""
    if not platforms:
        return True
    mine = platform_of(descriptor)
    if mine is None:
        return False
    return any(mine == p or mine.startswith(p + "/") for p in platforms)


def rule_view(rule_id: int, rule: SyncRule, created_at: str, updated_at: str) -> dict[str, Any]:
    """The API's view of a rule."""
    return {
        "id": rule_id,
        "kind": rule.kind,
        **rule.spec(),
        "interval_seconds": rule.interval_seconds,
        "enabled": rule.enabled,
        "created_at": created_at,
        "updated_at": updated_at,
    }
