"""A whole /v2 front with the hosted registry, in memory: for test_hosted and test_registry_auth.

Built by `harbor_cache.testing.build_app`: storage runs file work inline, the
index is a threadless sqlite pool, time is a task.Clock and passwords are
compared without bcrypt (`PlainPasswords`), so every request finishes inside
the test's own call (StubTreq, no reactor, no threads).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tempfile

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from harbor_cache.testing import PlainPasswords, build_app, fixed_keys

__all__ = ["OCI_INDEX", "OCI_MANIFEST", "PUBLIC_URL", "USERS", "Registry", "basic", "sha256"]

PUBLIC_URL = "http://registry.test"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
USERS = {"admin": ("admin-pw", "admin"), "writer": ("writer-pw", "read-write"), "reader": ("reader-pw", "read-only")}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def basic(user: str, password: str | None = None) -> dict:
    password = USERS[user][0] if password is None else password
    return {b"Authorization": [b"Basic " + base64.b64encode(f"{user}:{password}".encode())]}


class Registry:
    """Everything behind the /v2 front, plus helpers to push and read."""

    def __init__(self, case, anonymous_pull: bool = True, *, node: str = "local", twin_of: Registry | None = None):
        """A fresh registry; or, with ``twin_of``, another node on its index, data directory and clock
        (its own app, so nothing in memory is shared)."""
        if twin_of is None:
            self.dir = tempfile.mkdtemp(prefix="harbor-hosted-test-")
            case.addCleanup(shutil.rmtree, self.dir, True)
            self.clock = Clock()
            self.clock.advance(1_700_000_000)
        else:
            self.dir, self.clock = twin_of.dir, twin_of.clock
        self.app = app = build_app(
            self.dir,
            clock=self.clock,
            passwords=PlainPasswords,
            public_url=PUBLIC_URL,
            node_name=node,
            token_keys=fixed_keys(registry=b"k" * 32),
            migrate=twin_of is None,
        )
        self.pool = app.db_pool
        case.addCleanup(self.pool.close)
        self.storage = app.storage
        self.index = app.index
        self.settings = app.settings
        case.successResultOf(Deferred.fromCoroutine(self._setup(anonymous_pull, first=twin_of is None)))
        self.metrics = app.metrics
        self.oci = app.oci
        self.tokens = app.registry_tokens
        self.policy = app.registry_policy
        self.hosted = app.hosted
        self.front = app.oci_front
        self.treq = StubTreq(self.front.app.resource())
        self.case = case

    async def _setup(self, anonymous_pull: bool, first: bool) -> None:
        await self.settings.load()
        if not first:
            return
        if not anonymous_pull:
            await self.settings.update([("registry.anonymous_pull", "false")])
        for name, (password, role) in USERS.items():
            await self.index.create_user(name, password, role, self.clock.seconds())

    def other_node(self, node: str) -> Registry:
        """Another node on the same index and data directory, with nothing in memory shared."""
        return Registry(self.case, node=node, twin_of=self)

    # -- HTTP -------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict | None = None, user: str | None = "admin"
    ):
        """(response, body bytes); ``user`` adds Basic credentials (None: anonymous)."""
        h = dict(basic(user) if user else {})
        for k, v in (headers or {}).items():
            h[k.encode() if isinstance(k, str) else k] = [v.encode() if isinstance(v, str) else v]
        url = PUBLIC_URL + path
        kw = {"headers": h}
        if body:
            kw["data"] = body
        d = self.treq.request(method, url, **kw)
        self.treq.flush()
        response = self.case.successResultOf(d)
        content = self.treq.content(response)
        self.treq.flush()
        return response, self.case.successResultOf(content)

    @staticmethod
    def header(response, name: str) -> str | None:
        values = response.headers.getRawHeaders(name)
        return values[0] if values else None

    @staticmethod
    def error_code(body: bytes) -> str:
        return json.loads(body)["errors"][0]["code"]

    def push_blob(self, name: str, data: bytes, user: str = "admin") -> str:
        digest = sha256(data)
        response, body = self.request(
            "POST",
            f"/v2/{name}/blobs/uploads/?digest={digest}",
            data,
            user=user,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.case.assertEqual(response.code, 201, body)
        return digest

    def image_manifest(self, name: str, layers: list[bytes], config: bytes = b"{}", **extra) -> bytes:
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": self.push_blob(name, config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": self.push_blob(name, layer),
                    "size": len(layer),
                }
                for layer in layers
            ],
        }
        doc.update(extra)
        return json.dumps(doc).encode()

    def put_manifest(self, name: str, ref: str, body: bytes, media_type: str = OCI_MANIFEST, user: str = "admin"):
        return self.request("PUT", f"/v2/{name}/manifests/{ref}", body, {"Content-Type": media_type}, user=user)
