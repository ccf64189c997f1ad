"""The OpenAPI document against the routes the server really serves.

The routes are found by walking the resource tree of a whole app built by
`harbor_cache.testing.build_app` (the wiring of service.py): every Klein front
mounted on the root, by the segments it is mounted under, and every plain
resource (/metrics).  /v2/ has one catch-all route; what it serves are the
kinds of `harbor_cache.grammar.oci_paths` the OCI front answers.  So a route
added to a front, or a front mounted under a new segment, fails here until it
is documented, and a documented path that nothing serves fails too.
"""

from __future__ import annotations

import os
import re

from klein.resource import KleinResource
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import HTTPException
from werkzeug.routing import MapAdapter, Rule

from harbor_cache import __version__
from harbor_cache.api import openapi
from harbor_cache.api.openapi import build_document
from harbor_cache.grammar.oci_paths import parse_v2_path
from harbor_cache.testing import build_app

HOST = "harbor.test"
DIGEST = "sha256:" + "0" * 64
ARTIFACT = "central/org/x/1.0/x-1.0.jar"

# A value for each path parameter of the document.
PARAMETER_SAMPLES = {
    "name": "library/x",
    "reference": "latest",
    "digest": DIGEST,
    "session_id": "session",
    "id": "1",
    "key": "cache.max_size",
    "repositoryId": "central",
    "artifactPath": "org/x/1.0/x-1.0.jar",
}
# Path parameters that stand for more than one segment (OpenAPI's cannot hold '/').
MULTI_SEGMENT = {"name", "artifactPath"}

# /v2/ paths of each kind of grammar.oci_paths.
V2_SAMPLES = {
    "base": ["/v2/"],
    "catalog": ["/v2/_catalog"],
    "token": ["/v2/token"],
    "manifest": ["/v2/library/x/manifests/latest"],
    "blob": [f"/v2/library/x/blobs/{DIGEST}"],
    "upload": ["/v2/library/x/blobs/uploads/", "/v2/library/x/blobs/uploads/session"],
    "tags": ["/v2/library/x/tags/list"],
    "referrers": [f"/v2/library/x/referrers/{DIGEST}"],
}
V2_CATCH_ALL = "/v2/<path:rest>"
# The kinds OciFront answers itself; the others are its extensions (HostedFront's routes).
V2_OWN_KINDS = {"base", "manifest", "blob"}

# Plain resources that are not part of the API: the console's static files.
NOT_API = {b"ui"}

# Served rules that are another spelling of a documented path, and why.
ALIASES = {
    "/v2": "/v2/",  # the version check without its slash
    "/repositories/": "/repositories",  # the list with a trailing slash
    "/artifacts/": "/artifacts/{repositoryId}/{artifactPath}",  # the bare prefix, refused by the artifact handler
}

_ARGUMENT = re.compile(r"<(?:(\w+):)?(\w+)>")
_TEMPLATE = re.compile(r"\{(\w+)\}")


def mounted(root) -> dict[bytes, list]:
    """First path segment -> the resources the root routes it to.

    Read from the root's tables (any dict of segment -> resource it holds), so
    this does not depend on how the root names them.
    """
    found: dict[bytes, list] = {}
    for table in vars(root).values():
        if isinstance(table, dict):
            for segment, res in table.items():
                if isinstance(segment, bytes) and IResource.providedBy(res):
                    found.setdefault(segment, []).append(res)
    return found


def klein_adapter(resources: list) -> MapAdapter | None:
    """The URL map of the Klein front among ``resources``, bound to `HOST`; None when there is none."""
    for res in resources:
        if isinstance(res, KleinResource):
            return res._app.url_map.bind(HOST)
    return None


def renders(res, method: str) -> bool:
    """A plain resource answers ``method``: a render_<METHOD>, or a render of its own (WSGI: /metrics)."""
    return hasattr(res, f"render_{method}") or type(res).render is not Resource.render


def template_regex(template: str) -> re.Pattern:
    """A document path as a regex over concrete paths."""
    pattern, end = "", 0
    for match in _TEMPLATE.finditer(template):
        pattern += re.escape(template[end : match.start()])
        pattern += ".+" if match.group(1) in MULTI_SEGMENT else "[^/]+"
        end = match.end()
    return re.compile(pattern + re.escape(template[end:]) + r"\Z")


def sample_url(template: str) -> str:
    return _TEMPLATE.sub(lambda m: PARAMETER_SAMPLES[m.group(1)], template)


#: (sample URL, document path, method) of the identity and access endpoints (issue 27)
IDENTITY_ENDPOINTS = [
    ("/api/v1/users/me", "/api/v1/users/me", "GET"),
    ("/api/v1/users/me/cli-secret", "/api/v1/users/me/cli-secret", "POST"),
    ("/api/v1/users", "/api/v1/users", "POST"),
    ("/api/v1/users/1", "/api/v1/users/{id}", "PUT"),
    ("/api/v1/groups", "/api/v1/groups", "GET"),
    ("/api/v1/groups", "/api/v1/groups", "POST"),
    ("/api/v1/groups/1", "/api/v1/groups/{id}", "GET"),
    ("/api/v1/groups/1", "/api/v1/groups/{id}", "PUT"),
    ("/api/v1/groups/1", "/api/v1/groups/{id}", "DELETE"),
    ("/api/v1/robots", "/api/v1/robots", "GET"),
    ("/api/v1/robots", "/api/v1/robots", "POST"),
    ("/api/v1/robots/1", "/api/v1/robots/{id}", "GET"),
    ("/api/v1/robots/1", "/api/v1/robots/{id}", "PUT"),
    ("/api/v1/robots/1", "/api/v1/robots/{id}", "DELETE"),
    ("/api/v1/robots/1/secret", "/api/v1/robots/{id}/secret", "POST"),
    ("/api/v1/auth/methods", "/api/v1/auth/methods", "GET"),
    ("/api/v1/auth/oidc/login", "/api/v1/auth/oidc/login", "GET"),
    ("/api/v1/auth/oidc/callback", "/api/v1/auth/oidc/callback", "GET"),
]


class RoutesDocumentedTests(SynchronousTestCase):
    def setUp(self):
        app = build_app(self.mktemp())
        self.addCleanup(app.db_pool.close)
        self.app = app
        self.mounts = mounted(app.root)
        self.doc = build_document(__version__)
        self.paths = self.doc["paths"]

    def documented_methods(self, url: str) -> set[str]:
        """The methods the document gives for the concrete path ``url``: its literal entry, else a template's."""
        if url in self.paths:
            return {m.upper() for m in self.paths[url]}
        methods: set[str] = set()
        for template, operations in self.paths.items():
            if template_regex(template).match(url):
                methods |= {m.upper() for m in operations}
        return methods

    def served_v2_kinds(self) -> set[str]:
        return V2_OWN_KINDS | set(self.app.oci_front.extensions)

    def test_walk_finds_the_fronts(self):
        """The walk sees every front (else the tests below would check nothing)."""
        for segment in (b"v2", b"api", b"artifacts", b"repositories", b"token", b"health", b"livez", b"metrics"):
            self.assertIn(segment, self.mounts)
        self.assertIsNotNone(klein_adapter(self.mounts[b"api"]))

    def test_every_served_route_is_documented(self):
        """Each (path, method) of each mounted Klein front has an operation; HEAD is GET's when not its own.

        A plain resource (/metrics) needs a GET of its segment.
        """
        missing = []
        for segment, resources in self.mounts.items():
            adapter = klein_adapter(resources)
            if adapter is None:
                if segment not in NOT_API and "GET" not in self.documented_methods("/" + segment.decode()):
                    missing.append(("/" + segment.decode(), "GET"))
                continue
            for rule in adapter.map.iter_rules():
                if not isinstance(rule, Rule) or rule.rule.split("/")[1].encode() != segment:
                    continue  # a route of this front under another segment: checked there, if mounted
                if rule.rule == V2_CATCH_ALL:
                    continue  # by kind, below
                url = ALIASES.get(rule.rule) or _ARGUMENT.sub(self._argument_sample, rule.rule)
                documented = self.documented_methods(url) if "{" not in url else self._methods_of(url)
                for method in sorted(rule.methods or ()):
                    if method in documented or (method == "HEAD" and "GET" in documented):
                        continue
                    missing.append((rule.rule, method))
        self.assertEqual(missing, [])

    def _argument_sample(self, match: re.Match) -> str:
        converter = match.group(1)
        if converter in ("path", "anypath"):
            return ARTIFACT
        return "1" if converter == "id" else "sample"

    def _methods_of(self, template: str) -> set[str]:
        return {m.upper() for m in self.paths.get(template, {})}

    def test_every_v2_kind_is_documented(self):
        """Each /v2/ kind the OCI front answers (itself or through HostedFront) has a documented path."""
        for kind in self.served_v2_kinds():
            for sample in V2_SAMPLES[kind]:  # a new kind needs a sample
                route = parse_v2_path(sample[len("/v2/") :])
                self.assertEqual(route.kind if route else None, kind, sample)
                self.assertTrue(self.documented_methods(sample), f"/v2/ kind {kind} ({sample}) is not documented")

    def test_every_documented_operation_is_served(self):
        """Each documented (path, method) reaches a front that routes it: no stale entries."""
        unserved = []
        v2_kinds = self.served_v2_kinds()
        for template, operations in self.paths.items():
            url = sample_url(template)
            resources = self.mounts.get(url.split("/")[1].encode(), [])
            adapter = klein_adapter(resources)
            for method in (m.upper() for m in operations):
                if adapter is None:
                    served = any(renders(res, method) for res in resources)
                else:
                    served = self._routes(adapter, url, method)
                if served and url.startswith("/v2/"):
                    route = parse_v2_path(url[len("/v2/") :])
                    served = route is not None and route.kind in v2_kinds
                if not served:
                    unserved.append((template, method))
        self.assertEqual(unserved, [])

    def _routes(self, adapter: MapAdapter, url: str, method: str) -> bool:
        try:
            adapter.match(url, method=method)
        except HTTPException:
            return False
        return True

    def test_identity_endpoints_are_served_and_documented(self):
        """Issue 27's endpoints, named: each is routed by the API front and has its operation in the document."""
        adapter = klein_adapter(self.mounts[b"api"])
        assert adapter is not None
        for url, template, method in IDENTITY_ENDPOINTS:
            self.assertTrue(self._routes(adapter, url, method), (url, method))
            self.assertIn(method.lower(), self.paths.get(template, {}), (template, method))
        audit = self.paths["/api/v1/audit"]["get"]["parameters"]
        self.assertIn("actor_kind", [p.get("name") for p in audit])

    def test_checks_can_fail(self):
        """An undocumented route and a stale entry are both caught (the checks above are not vacuous)."""
        del self.paths["/api/v1/users/{id}"]["delete"]
        self.paths["/api/v1/nothing"] = {"get": {}}
        self.assertRaises(self.failureException, self.test_every_served_route_is_documented)
        self.assertRaises(self.failureException, self.test_every_documented_operation_is_served)


class LayoutTests(SynchronousTestCase):
    def test_no_module_over_600_lines(self):
        """The document is written per front (api/openapi/*.py), none of them over the house limit."""
        folder = os.path.dirname(openapi.__file__)
        modules = [name for name in os.listdir(folder) if name.endswith(".py")]
        self.assertIn("common.py", modules)
        for name in modules:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                self.assertLessEqual(len(f.readlines()), 600, name)
