"""maven-metadata.xml: merging the copies of a group's members, and Maven's version order.

Pure (no Twisted, no I/O), so the rules are tested on their own.  A group
serves one ``maven-metadata.xml`` built from every member that has one:

- ``versioning/versions``: the union, in Maven's version order;
- ``latest``: the highest version of the union; ``release``: the highest
  version that is not a SNAPSHOT (recomputed, not copied, so a member's
  stale pointer cannot hide a newer version of another member);
- ``lastUpdated``: the newest of the members';
- ``snapshot`` (SNAPSHOT version metadata): the one of the member updated
  last; ``snapshotVersions``: the union by (classifier, extension), the most
  recently ``updated`` winning;
- ``plugins`` (group-level metadata): the union by ``prefix``.

The same rules as Maven's own ``Metadata.merge``, applied to N copies.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET

__all__ = ["MetadataInvalid", "merge_metadata", "version_key", "MAX_METADATA_BYTES"]

# A member's maven-metadata.xml above this is not merged (a real one is a few KiB;
# commons-lang's with every version ever released is ~10 KiB).
MAX_METADATA_BYTES = 4 << 20

_QUALIFIERS = {
    "alpha": 1,
    "a": 1,
    "beta": 2,
    "b": 2,
    "milestone": 3,
    "m": 3,
    "rc": 4,
    "cr": 4,
    "snapshot": 5,
    "": 6,
    "ga": 6,
    "final": 6,
    "release": 6,
    "sp": 7,
}
_TOKEN_RE = re.compile(r"\d+|[a-zA-Z]+")


class MetadataInvalid(ValueError):
    """A maven-metadata.xml that is not XML, or whose root is not <metadata>."""


def _items(version: str) -> list[tuple]:
    items: list[tuple] = []
    for token in _TOKEN_RE.findall(version):
        if token.isdigit():
            items.append((1, int(token), ""))
        else:
            lowered = token.lower()
            rank = _QUALIFIERS.get(lowered)
            items.append((0, rank, "") if rank is not None else (0, 8, lowered))
    # Maven's normalisation: a zero before a qualifier or at the end means
    # nothing (1.0 == 1, 1.0-rc1 == 1-rc1), and so does a "release" qualifier.
    changed = True
    while changed:
        changed = False
        for i in range(len(items) - 1, -1, -1):
            last = i == len(items) - 1
            if items[i] in ((1, 0, ""), _RELEASE) and (last or items[i + 1][0] == 0):
                del items[i]
                changed = True
                break
    return items


_RELEASE = (0, 6, "")


def _compare(a: str, b: str) -> int:
    left, right = _items(a), _items(b)
    for i in range(max(len(left), len(right))):
        x = left[i] if i < len(left) else _RELEASE
        y = right[i] if i < len(right) else _RELEASE
        if x != y:
            return -1 if x < y else 1
    return (a > b) - (a < b)  # equal by Maven's rules: a stable order all the same


# A sort key approximating Maven's ComparableVersion: numbers compare as
# numbers and beat qualifiers; 1.0 == 1.0.0; known qualifiers order
# alpha < beta < milestone < rc < snapshot < (release) < sp, and an unknown
# qualifier sorts after them, alphabetically.
version_key = functools.cmp_to_key(_compare)


def _text(parent: ET.Element | None, tag: str) -> str | None:
    if parent is None:
        return None
    child = parent.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


def _set(parent: ET.Element, tag: str, value: str | None) -> None:
    if value is not None:
        ET.SubElement(parent, tag).text = value


def _parse(body: bytes) -> ET.Element:
    if len(body) > MAX_METADATA_BYTES:
        raise MetadataInvalid(f"larger than {MAX_METADATA_BYTES} bytes")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise MetadataInvalid("DTDs and entities are not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise MetadataInvalid(f"not XML: {e}") from None
    # Some writers put the POM namespace on <metadata>; drop namespaces.
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.startswith("{"):
            el.tag = el.tag.split("}", 1)[1]
    if root.tag != "metadata":
        raise MetadataInvalid(f"root element is <{root.tag}>, not <metadata>")
    return root


def merge_metadata(bodies: list[bytes]) -> bytes:
    """One maven-metadata.xml from the members' copies (in member order); raises `MetadataInvalid`."""
    if not bodies:
        raise MetadataInvalid("nothing to merge")
    roots = [_parse(b) for b in bodies]
    first = roots[0]
    out = ET.Element("metadata")
    model_version = first.get("modelVersion")
    if model_version:
        out.set("modelVersion", model_version)
    for tag in ("groupId", "artifactId", "version"):
        _set(out, tag, next((text for r in roots if (text := _text(r, tag)) is not None), None))

    versionings = [found for r in roots if (found := r.find("versioning")) is not None]
    if versionings:
        _merge_versioning(out, versionings)

    plugins: dict[str, ET.Element] = {}
    for r in roots:
        for p in r.findall("plugins/plugin"):
            prefix = _text(p, "prefix")
            if prefix is not None and prefix not in plugins:
                plugins[prefix] = p
    if plugins:
        holder = ET.SubElement(out, "plugins")
        for prefix in sorted(plugins):
            holder.append(plugins[prefix])
    ET.indent(out, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(out, encoding="utf-8") + b"\n"


def _merge_versioning(out: ET.Element, versionings: list[ET.Element]) -> None:
    versions: dict[str, None] = {}
    for v in versionings:
        for el in v.findall("versions/version"):
            if el.text and el.text.strip():
                versions.setdefault(el.text.strip(), None)
        # A copy whose pointers name a version missing from its list still counts it.
        for tag in ("latest", "release"):
            value = _text(v, tag)
            if value is not None:
                versions.setdefault(value, None)
    ordered = sorted(versions, key=version_key)
    updated = [u for v in versionings if (u := _text(v, "lastUpdated")) is not None]
    newest = max(versionings, key=lambda v: _text(v, "lastUpdated") or "")

    versioning = ET.SubElement(out, "versioning")
    if ordered:
        _set(versioning, "latest", ordered[-1])
        releases = [version for version in ordered if not version.endswith("-SNAPSHOT")]
        _set(versioning, "release", releases[-1] if releases else None)
    snapshot = newest.find("snapshot")
    if snapshot is None:
        snapshot = next((s for v in versionings if (s := v.find("snapshot")) is not None), None)
    if snapshot is not None:
        versioning.append(snapshot)
    if ordered:
        holder = ET.SubElement(versioning, "versions")
        for version in ordered:
            ET.SubElement(holder, "version").text = version
    _set(versioning, "lastUpdated", max(updated) if updated else None)

    snapshot_versions: dict[tuple[str, str], ET.Element] = {}
    for v in versionings:
        for sv in v.findall("snapshotVersions/snapshotVersion"):
            key = (_text(sv, "classifier") or "", _text(sv, "extension") or "")
            held = snapshot_versions.get(key)
            if held is None or (_text(sv, "updated") or "") > (_text(held, "updated") or ""):
                snapshot_versions[key] = sv
    if snapshot_versions:
        holder = ET.SubElement(versioning, "snapshotVersions")
        for key in sorted(snapshot_versions):
            holder.append(snapshot_versions[key])
