"""Hosted Maven repositories over time: which versions a repository takes, and which SNAPSHOT builds go.

Pure (no Twisted, no I/O), so the rules are tested on their own; the deployer
(`core.maven.deploy`) asks `policy_refusal` before a body is read, and
`core.maven.snapshot_cleanup` asks `builds_in` / `listed_builds` /
`builds_to_remove` after a SNAPSHOT version's ``maven-metadata.xml`` is
deployed.

- ``version_policy`` of a hosted repository: "release" takes no SNAPSHOT,
  "snapshot" takes nothing but SNAPSHOTs, "mixed" (the default) takes both.
  What counts is the version of the path (`MavenPath.version`,
  `MavenPath.is_snapshot`): a ``maven-metadata.xml`` (and its checksums) at
  the artifact or group level has no version and is always taken - every
  deploy writes one there.
- A SNAPSHOT version holds timestamped builds: every file of build
  ``20240101.120000-3`` of ``lib`` ``2.0-SNAPSHOT`` is named
  ``lib-2.0-20240101.120000-3[-classifier].ext[.sha1...]``.  Keeping the N
  newest (by build number, then timestamp) removes every file of the
  others; a build the version's current metadata lists (``<snapshot>``,
  ``<snapshotVersions>``) is never removed, so what mvn resolves from that
  metadata is always there and the metadata the client deployed (and the
  checksums it deploys next) stay exactly as sent.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harbor_cache.grammar.maven_metadata import parse_metadata
from harbor_cache.grammar.maven_paths import SNAPSHOT_SUFFIX, MavenPath

__all__ = [
    "DEFAULT_VERSION_POLICY",
    "VERSION_POLICIES",
    "SnapshotBuild",
    "builds_in",
    "builds_to_remove",
    "idle_versions",
    "listed_builds",
    "policy_refusal",
]

VERSION_POLICIES = ("release", "snapshot", "mixed")
# What a hosted repository without the key takes (what every repository took before the key existed).
DEFAULT_VERSION_POLICY = "mixed"

_BUILD_RE = re.compile(r"(\d{8}\.\d{6})-(\d+)(?=[-.]|$)")
_VALUE_BUILD_RE = re.compile(r"-(\d{8}\.\d{6})-(\d+)$")


def policy_refusal(policy: str, repository: str, target: MavenPath) -> str | None:
    """Why ``repository`` (of ``version_policy`` ``policy``) refuses a deploy to ``target``, or None.

    The message is one line, short enough to be the HTTP reason phrase that
    mvn prints; it names the version, not the (long) path.
    """
    if policy == "mixed":
        return None
    version = target.version
    if version is None:
        return None  # artifact- or group-level metadata: every deploy writes it
    if policy == "release" and target.is_snapshot:
        return (
            f"{version} is a SNAPSHOT and repository {repository} takes releases only "
            f"(version_policy = release): deploy SNAPSHOTs to a snapshot repository"
        )
    if policy == "snapshot" and not target.is_snapshot:
        return (
            f"{version} is a release and repository {repository} takes SNAPSHOTs only "
            f"(version_policy = snapshot): deploy releases to a release repository"
        )
    return None


@dataclass(frozen=True, order=True, slots=True)
class SnapshotBuild:
    """One timestamped build of a SNAPSHOT version; ordered oldest first (build number, then timestamp)."""

    build_number: int
    timestamp: str  # yyyyMMdd.HHmmss (UTC)

    @property
    def stem(self) -> str:
        """``20240101.120000-3``: what replaces ``SNAPSHOT`` in the build's file names."""
        return f"{self.timestamp}-{self.build_number}"


def builds_in(names: Iterable[str], artifact: str, version: str) -> dict[SnapshotBuild, list[str]]:
    """The files (names in the version directory) of each timestamped build of ``artifact`` ``version``.

    Names that are no build's file (``maven-metadata.xml``, the
    non-timestamped ``lib-2.0-SNAPSHOT.jar`` some clients deploy, another
    artifact's files) are in no list, so they are never removed.
    """
    if not version.endswith(SNAPSHOT_SUFFIX):
        return {}
    prefix = f"{artifact}-{version[: -len(SNAPSHOT_SUFFIX)]}-"
    found: dict[SnapshotBuild, list[str]] = {}
    for name in names:
        if not name.startswith(prefix):
            continue
        m = _BUILD_RE.match(name, len(prefix))
        if m is None:
            continue
        found.setdefault(SnapshotBuild(int(m.group(2)), m.group(1)), []).append(name)
    return found


def listed_builds(metadata: bytes) -> set[SnapshotBuild]:
    """The builds a version-level ``maven-metadata.xml`` points at (``<snapshot>`` and ``<snapshotVersions>``).

    Raises `MetadataInvalid` for a body that is not metadata (nothing is then
    removed: the caller keeps every build).
    """
    root = parse_metadata(metadata)
    listed: set[SnapshotBuild] = set()
    versioning = root.find("versioning")
    if versioning is None:
        return listed
    snapshot = versioning.find("snapshot")
    if snapshot is not None:
        timestamp = _text(snapshot, "timestamp")
        number = _text(snapshot, "buildNumber")
        if timestamp and number and number.isdigit():
            listed.add(SnapshotBuild(int(number), timestamp))
    for entry in versioning.findall("snapshotVersions/snapshotVersion"):
        m = _VALUE_BUILD_RE.search(_text(entry, "value") or "")
        if m is not None:
            listed.add(SnapshotBuild(int(m.group(2)), m.group(1)))
    return listed


def _text(parent: ET.Element, tag: str) -> str | None:
    value = parent.findtext(tag)
    return value.strip() if value is not None else None


def builds_to_remove(
    builds: Iterable[SnapshotBuild], keep: int, listed: Iterable[SnapshotBuild]
) -> list[SnapshotBuild]:
    """The builds beyond the ``keep`` newest, oldest first; a ``listed`` build always stays; keep 0 keeps all."""
    if keep <= 0:
        return []
    pinned = set(listed)
    newest_first = sorted(set(builds), reverse=True)
    return sorted(b for b in newest_first[keep:] if b not in pinned)


def idle_versions(last_used: Mapping[str, float], now: float, max_idle_days: float) -> list[str]:
    """The versions (of ``last_used``: version -> newest download or deploy, epoch seconds) idle for longer.

    ``max_idle_days`` 0 (or less) removes none.
    """
    if max_idle_days <= 0:
        return []
    cutoff = now - max_idle_days * 86400
    return sorted(v for v, t in last_used.items() if t < cutoff)
