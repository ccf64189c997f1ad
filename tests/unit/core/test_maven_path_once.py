"""A Maven GET parses and classifies its path once (`grammar.maven_paths.MavenPath`), not in every step.

The front parses the raw path into a `MavenPath`; the core reads its content
type, mutability, checksum base and directory-listing rule from it instead of
classifying the string again (content_type_for was called four times on a
miss, is_mutable, checksum_base and is_directory_listing once or more each).
"""

from harbor_cache.core.maven import cache as cache_module
from harbor_cache.core.maven import deploy as deploy_module
from harbor_cache.core.maven import download as download_module
from harbor_cache.core.maven import group as group_module
from harbor_cache.grammar import maven_paths
from harbor_cache.grammar.maven_paths import MavenPath
from harbor_cache.maven import front as front_module
from tests.unit.maven.test_maven_front import JAR, FrontBase
from tests.unit.maven.test_maven_hosted import HostedBase

CLASSIFIERS = (
    "content_type_for",
    "is_mutable",
    "is_metadata",
    "checksum_base",
    "checksum_algorithm",
    "is_checksum",
    "normalize_artifact_path",
)


class Recording:
    """Counts `MavenPath.of` and every classification by name in the Maven front and core modules."""

    def install(self, case):
        self.parsed: list[str] = []
        self.classified: list[tuple[str, str]] = []
        original = MavenPath.of.__func__

        def of(cls, path):
            self.parsed.append(path)
            return original(cls, path)

        case.patch(MavenPath, "of", classmethod(of))
        for module in (cache_module, deploy_module, download_module, group_module, front_module):
            for name in CLASSIFIERS:
                if hasattr(module, name):
                    case.patch(module, name, self._recording(name, getattr(maven_paths, name)))

    def _recording(self, name, function):
        def record(path, *args):
            self.classified.append((name, path))
            return function(path, *args)

        return record


class GetParsedOnceTests(FrontBase):
    def setUp(self):
        super().setUp()
        self.recording = Recording()
        self.recording.install(self)

    def test_a_cold_get_and_a_warm_get_classify_the_path_once(self):
        response, body = self.call("GET", "/artifacts/central/" + JAR)
        self.assertEqual((response.code, body), (200, self.jar))
        response, body = self.call("GET", "/artifacts/central/" + JAR)
        self.assertEqual((response.code, body), (200, self.jar))
        self.assertEqual(self.recording.parsed, [JAR])
        self.assertEqual([c for c in self.recording.classified if c[1] == JAR], [])


class DeployParsedOnceTests(HostedBase):
    def setUp(self):
        super().setUp()
        self.recording = Recording()
        self.recording.install(self)

    def test_a_deploy_classifies_its_path_once(self):
        response, _ = self.put("releases", JAR, b"deployed bytes")
        self.assertEqual(response.code, 201)
        self.assertEqual(self.recording.parsed, [JAR])
        self.assertEqual([c for c in self.recording.classified if c[1] == JAR], [])
