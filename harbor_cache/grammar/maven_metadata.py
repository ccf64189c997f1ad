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

A copy comes from an upstream nobody here controls, so what one may cost is
bounded (`MetadataLimits`: bytes, versions, length of a version; a copy
beyond them is refused, `merge_within_limits` leaves it out), each version's
sort key is computed once and in linear time, and the parser refuses any
DTD (no entity expansion).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pyexpat import ExpatError, ParserCreate

__all__ = [
    "DEFAULT_LIMITS",
    "MetadataInvalid",
    "MetadataLimits",
    "MetadataTooLarge",
    "check_limits",
    "merge_metadata",
    "merge_within_limits",
    "parse_metadata",
    "version_key",
]


@dataclass(frozen=True)
class MetadataLimits:
    """What one maven-metadata.xml may hold before it is refused (the ``maven.metadata_*`` settings).

    A real file is a few KiB (commons-lang's, with every version ever
    released, is ~10 KiB; Central's largest hold a few thousand versions of
    under 100 characters).  Maven itself sets no bound, but one hostile copy
    must not cost more than any real one: see docs/security.md.
    """

    max_bytes: int = 4 << 20
    max_versions: int = 10_000
    max_version_length: int = 256


DEFAULT_LIMITS = MetadataLimits()

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
_TOKEN_RE = re.compile(r"(\d+)|([a-zA-Z]+)")
_ZERO = (1, 0, "")
_RELEASE = (0, 6, "")


class MetadataInvalid(ValueError):
    """A maven-metadata.xml that is not XML, or whose root is not <metadata>."""


class MetadataTooLarge(MetadataInvalid):
    """A maven-metadata.xml beyond `MetadataLimits` (bytes, versions, length of a version)."""


def _items(version: str) -> list[tuple]:
    """Maven's items of ``version``, normalised; linear in its length (it is computed once per version).

    A number is ``(1, digits, text)``: compared by length, then text, it
    orders as the number would with no bound on its size (``int`` refuses
    more than 4300 digits).
    """
    items: list[tuple] = []
    append = items.append
    for digits, letters in _TOKEN_RE.findall(version):
        if digits:
            digits = digits.lstrip("0")
            append((1, len(digits), digits))
        else:
            lowered = letters.lower()
            rank = _QUALIFIERS.get(lowered)
            append((0, rank, "") if rank is not None else (0, 8, lowered))
    # Maven's normalisation: a zero before a qualifier or at the end means
    # nothing (1.0 == 1, 1.0-rc1 == 1-rc1), and so does a "release" qualifier.
    # Whether an item goes depends only on the item kept after it, so one pass
    # from the end decides each once.
    kept: list[tuple] = []
    for item in reversed(items):
        if (item == _ZERO or item == _RELEASE) and (not kept or kept[-1][0] == 0):
            continue
        kept.append(item)
    kept.reverse()
    return kept


def version_key(version: str) -> tuple:
    """A sort key approximating Maven's ComparableVersion, computed once per version (decorate-sort).

    Numbers compare as numbers and beat qualifiers; 1.0 == 1.0.0; known
    qualifiers order alpha < beta < milestone < rc < snapshot < (release) <
    sp, and an unknown qualifier sorts after them, alphabetically.  Maven pads
    the shorter list with "release" items: the closing ``_RELEASE`` does that
    (after it, the other list can only go on with a number, which is higher,
    as a longer tuple is).  Versions equal by Maven's rules fall back to
    their text, for a stable order all the same.
    """
    return (*_items(version), _RELEASE), version


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


def _refuse_dtd(*_args: object) -> None:
    raise MetadataInvalid("DTDs and entities are not accepted")


def _parse(body: bytes, limits: MetadataLimits) -> ET.Element:
    """The tree of ``body``, built from expat's events with any DTD refused as it starts.

    Refusing ``<!DOCTYPE`` in the parser (not by looking for the bytes) holds
    in every encoding expat reads (UTF-16 too), so no entity is ever declared:
    no expansion ("billion laughs"; expat >= 2.4 bounds it as well), and no
    external entity (expat here never fetches one anyway).
    """
    if len(body) > limits.max_bytes:
        raise MetadataTooLarge(f"larger than {limits.max_bytes} bytes")
    builder = ET.TreeBuilder()
    parser = ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    # Some writers put the POM namespace on <metadata>: namespaces are dropped.
    parser.StartElementHandler = lambda tag, attrs: builder.start(tag.rpartition("}")[2], attrs)
    parser.EndElementHandler = lambda tag: builder.end(tag.rpartition("}")[2])
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(body, True)
        root = builder.close()
    except ExpatError as e:
        raise MetadataInvalid(f"not XML: {e}") from None
    except AssertionError:  # TreeBuilder.close without a root (cannot happen once expat accepted the body)
        raise MetadataInvalid("not XML: no root element") from None
    if root.tag != "metadata":
        raise MetadataInvalid(f"root element is <{root.tag}>, not <metadata>")
    _check_versions(root, limits)
    return root


def parse_metadata(body: bytes, limits: MetadataLimits = DEFAULT_LIMITS) -> ET.Element:
    """The root element of a maven-metadata.xml within ``limits`` (no DTD); `MetadataInvalid` otherwise."""
    return _parse(body, limits)


def _check_versions(root: ET.Element, limits: MetadataLimits) -> None:
    versions = root.findall("versioning/versions/version")
    if len(versions) > limits.max_versions:
        raise MetadataTooLarge(f"more than {limits.max_versions} versions")
    pointers = [root.find(tag) for tag in ("version", "versioning/latest", "versioning/release")]
    for el in [*versions, *pointers]:
        if el is not None and el.text and len(el.text.strip()) > limits.max_version_length:
            raise MetadataTooLarge(f"a version longer than {limits.max_version_length} characters")


def check_limits(body: bytes, limits: MetadataLimits) -> None:
    """Raise `MetadataTooLarge` when ``body`` is beyond ``limits``; a body that is not metadata passes.

    For a deploy: what is stored is the client's business until a group
    merges it (then `MetadataInvalid` is answered), but a copy that would be
    refused there for its size is refused at once.
    """
    try:
        _parse(body, limits)
    except MetadataTooLarge:
        raise
    except MetadataInvalid:
        return


def merge_metadata(bodies: list[bytes], limits: MetadataLimits = DEFAULT_LIMITS) -> bytes:
    """One maven-metadata.xml from the members' copies (in member order); raises `MetadataInvalid`."""
    if not bodies:
        raise MetadataInvalid("nothing to merge")
    return _merge([_parse(b, limits) for b in bodies])


def merge_within_limits(bodies: list[bytes], limits: MetadataLimits) -> tuple[bytes | None, list[tuple[int, str]]]:
    """Merge the copies within ``limits``, leaving out those beyond them: (merged, [(index, why)]).

    A group's answer does not depend on one member's excess: its copy is left
    out (the caller logs why) and the others are merged.  One copy left is
    returned as it is; none left gives None.  A copy that is not metadata at
    all raises `MetadataInvalid`, as `merge_metadata` does.
    """
    roots: list[ET.Element] = []
    kept: list[bytes] = []
    refused: list[tuple[int, str]] = []
    for i, body in enumerate(bodies):
        try:
            roots.append(_parse(body, limits))
        except MetadataTooLarge as e:
            refused.append((i, str(e)))
            continue
        kept.append(body)
    if not roots:
        return None, refused
    if len(roots) == 1:
        return kept[0], refused
    return _merge(roots), refused


def _merge(roots: list[ET.Element]) -> bytes:
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
