"""Repository kinds in the config (proxy, hosted, group) and the pure maven-metadata.xml merge."""

import xml.etree.ElementTree as ET

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.maven_metadata import MetadataInvalid, merge_metadata, version_key
from harbor_cache.settings.startup import ConfigError, parse_config


def repos(*tables):
    return {"maven": {"repositories": list(tables)}}


CENTRAL = {"id": "central", "url": "http://127.0.0.1:1/maven2"}


class RepositoryKindTests(SynchronousTestCase):
    def test_kinds_parsed(self):
        c = parse_config(
            repos(
                CENTRAL,
                {"id": "releases", "type": "hosted"},
                {"id": "loose", "type": "hosted", "redeploy": "allow"},
                {"id": "public", "type": "group", "members": ["releases", "central"]},
            )
        )
        by_id = {r.id: r for r in c.maven_repositories}
        self.assertEqual(by_id["central"].type, "proxy")
        self.assertTrue(by_id["central"].is_proxy)
        self.assertEqual(
            (by_id["releases"].type, by_id["releases"].redeploy, by_id["releases"].url), ("hosted", "deny", "")
        )
        self.assertEqual(by_id["loose"].redeploy, "allow")
        self.assertEqual(by_id["public"].members, ("releases", "central"))

    def test_bad_kinds_named(self):
        """Every mistake is refused at start with the key that is wrong."""
        for doc, where in (
            (repos({"id": "x", "type": "virtual"}), "maven.repositories[0].type"),
            (repos({"id": "x"}), "url are required"),
            (repos({"id": "x", "type": "hosted", "url": "http://a"}), "repositories[0].url: only a proxy"),
            (repos({"id": "x", "type": "hosted", "members": ["y"]}), "repositories[0].members: only a group"),
            (repos(CENTRAL, {"id": "x", "redeploy": "allow", "url": "http://a"}), "redeploy: only a hosted"),
            (repos({"id": "x", "type": "hosted", "redeploy": "sometimes"}), "repositories[0].redeploy"),
            (repos({"id": "g", "type": "group"}), "repositories[0].members"),
            (repos({"id": "g", "type": "group", "members": []}), "repositories[0].members"),
            (repos(CENTRAL, {"id": "g", "type": "group", "members": ["central", "central"]}), "twice"),
            (repos({"id": "g", "type": "group", "members": ["nope"]}), "g.members: no repository 'nope'"),
            (
                repos(
                    CENTRAL,
                    {"id": "g", "type": "group", "members": ["central"]},
                    {"id": "h", "type": "group", "members": ["g"]},
                ),
                "h.members: 'g' is a group",
            ),
            (
                repos({"id": "s", "type": "hosted", "private": True}, {"id": "g", "type": "group", "members": ["s"]}),
                "'s' is private",
            ),
        ):
            e = self.assertRaises(ConfigError, parse_config, doc)
            self.assertIn(where, str(e))

    def test_private_group_may_hold_private_member(self):
        c = parse_config(
            repos(
                {"id": "s", "type": "hosted", "private": True},
                {"id": "g", "type": "group", "members": ["s"], "private": True},
            )
        )
        self.assertTrue(c.maven_repositories[1].private)


def metadata(
    versions=(), latest=None, release=None, updated=None, snapshot=None, snapshot_versions=(), plugins=(), version=None
):
    parts = ["<metadata>", "<groupId>g</groupId>", "<artifactId>a</artifactId>"]
    if version:
        parts.append(f"<version>{version}</version>")
    if plugins:
        parts.append(
            "<plugins>"
            + "".join(f"<plugin><prefix>{p}</prefix><artifactId>{p}-plugin</artifactId></plugin>" for p in plugins)
            + "</plugins>"
        )
    parts.append("<versioning>")
    if latest:
        parts.append(f"<latest>{latest}</latest>")
    if release:
        parts.append(f"<release>{release}</release>")
    if snapshot:
        parts.append(
            f"<snapshot><timestamp>{snapshot[0]}</timestamp><buildNumber>{snapshot[1]}</buildNumber></snapshot>"
        )
    if versions:
        parts.append("<versions>" + "".join(f"<version>{v}</version>" for v in versions) + "</versions>")
    if updated:
        parts.append(f"<lastUpdated>{updated}</lastUpdated>")
    if snapshot_versions:
        parts.append(
            "<snapshotVersions>"
            + "".join(
                f"<snapshotVersion><extension>{ext}</extension><value>{value}</value><updated>{when}</updated>"
                "</snapshotVersion>"
                for ext, value, when in snapshot_versions
            )
            + "</snapshotVersions>"
        )
    parts.append("</versioning></metadata>")
    return "".join(parts).encode()


class MergeTests(SynchronousTestCase):
    def test_union_and_recomputed_pointers(self):
        merged = ET.fromstring(
            merge_metadata(
                [
                    metadata(["1.0", "1.1"], latest="1.1", release="1.1", updated="20240101000000"),
                    metadata(
                        ["0.9", "1.10", "2.0-SNAPSHOT"], latest="2.0-SNAPSHOT", release="1.10", updated="20250101000000"
                    ),
                ]
            )
        )
        self.assertEqual(
            [v.text for v in merged.findall("versioning/versions/version")],
            ["0.9", "1.0", "1.1", "1.10", "2.0-SNAPSHOT"],
        )
        self.assertEqual(merged.findtext("versioning/latest"), "2.0-SNAPSHOT")
        self.assertEqual(merged.findtext("versioning/release"), "1.10")
        self.assertEqual(merged.findtext("versioning/lastUpdated"), "20250101000000")
        self.assertEqual((merged.findtext("groupId"), merged.findtext("artifactId")), ("g", "a"))

    def test_snapshot_metadata(self):
        """The newest member's <snapshot>; snapshotVersions by extension, most recently updated wins."""
        merged = ET.fromstring(
            merge_metadata(
                [
                    metadata(
                        version="1.0-SNAPSHOT",
                        snapshot=("20240101.000000", 3),
                        updated="20240101000000",
                        snapshot_versions=[("jar", "1.0-20240101.000000-3", "20240101000000")],
                    ),
                    metadata(
                        version="1.0-SNAPSHOT",
                        snapshot=("20250101.000000", 1),
                        updated="20250101000000",
                        snapshot_versions=[
                            ("jar", "1.0-20250101.000000-1", "20250101000000"),
                            ("pom", "1.0-20250101.000000-1", "20250101000000"),
                        ],
                    ),
                ]
            )
        )
        self.assertEqual(merged.findtext("version"), "1.0-SNAPSHOT")
        self.assertEqual(merged.findtext("versioning/snapshot/timestamp"), "20250101.000000")
        values = {
            sv.findtext("extension"): sv.findtext("value")
            for sv in merged.findall("versioning/snapshotVersions/snapshotVersion")
        }
        self.assertEqual(values, {"jar": "1.0-20250101.000000-1", "pom": "1.0-20250101.000000-1"})

    def test_plugins_union(self):
        merged = ET.fromstring(merge_metadata([metadata(plugins=["jar", "deploy"]), metadata(plugins=["jar", "x"])]))
        self.assertEqual([p.findtext("prefix") for p in merged.findall("plugins/plugin")], ["deploy", "jar", "x"])

    def test_refused(self):
        for bad in (b"not xml", b"<project/>", b'<!DOCTYPE x [<!ENTITY a "b">]><metadata/>'):
            self.assertRaises(MetadataInvalid, merge_metadata, [metadata(["1"]), bad])

    def test_version_order(self):
        versions = [
            "1.0",
            "1.0-SNAPSHOT",
            "1.0-rc1",
            "1.0.1",
            "1.10",
            "1.9",
            "2.0-alpha",
            "2.0-beta-1",
            "2.0",
            "0.9",
            "1.0-sp1",
            "1.1-SNAPSHOT",
            "1.0-alpha-2",
            "1.0.0",
        ]
        self.assertEqual(
            sorted(versions, key=version_key),
            [
                "0.9",
                "1.0-alpha-2",
                "1.0-rc1",
                "1.0-SNAPSHOT",
                "1.0",
                "1.0.0",
                "1.0-sp1",
                "1.0.1",
                "1.1-SNAPSHOT",
                "1.9",
                "1.10",
                "2.0-alpha",
                "2.0-beta-1",
                "2.0",
            ],
        )
