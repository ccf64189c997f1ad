"""A Maven deploy between "file moved into place" and "row written": no deleter takes the file meanwhile.

The deploy renames the uploaded bytes to ``blobs/<digest>`` in
`TempBlob.finish` and only then writes the hosted row (`storage.commits`).
Each test runs a deleter at exactly that moment, from inside the row write:
a cache clear removing the last (proxied) row of the same bytes, or the
orphan sweep finding the file without a row.  The file must survive.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from twisted.internet import defer

from harbor_cache.core.operations.eviction import Evictor
from tests.unit.base import app_evictor
from tests.unit.maven.test_maven_hosted import CENTRAL_JAR, JAR, HostedBase


class DeployCommitGapTests(HostedBase):
    def before_row(self, deleter: Any) -> list[bool]:
        """Run ``deleter()`` once inside the deploy's row write, before the row is written."""
        index = self.app.index
        real = index.put_hosted_maven_file
        ran: list[bool] = []

        async def hooked(*args: Any, **kwargs: Any) -> Any:
            if not ran:
                ran.append(True)
                await deleter()
            return await real(*args, **kwargs)

        self.patch(index, "put_hosted_maven_file", hooked)
        return ran

    def evictor(self) -> Evictor:
        return app_evictor(self)

    def digest(self, data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def test_deploy_of_cached_bytes_survives_a_clear(self):
        """The bytes of a cached central jar deployed to a hosted repository while DELETE /api/v1/cache removes
        the cached row (the digest's last): the clear leaves the file for the deploy's row."""
        self.assertEqual(self.call("GET", "/artifacts/central/" + CENTRAL_JAR)[1], self.dep)
        evictor = self.evictor()
        cleared: list[int] = []

        async def clear() -> None:
            cleared.append(await evictor.clear_proxy())

        ran = self.before_row(clear)
        self.assertEqual(self.put("releases", JAR, self.dep)[0].code, 201)
        self.assertEqual(ran, [True])
        self.assertGreaterEqual(cleared[0], 1)
        self.assertIsNone(self.entry("central", CENTRAL_JAR))
        self.assertTrue(os.path.exists(self.app.storage.blob_path(self.digest(self.dep))))
        self.assertEqual(evictor.pending_files, {self.digest(self.dep)})  # (busy then: a later pass re-checks it)
        response, body = self.call("GET", "/artifacts/releases/" + JAR)
        self.assertEqual((response.code, body), (200, self.dep))
        # the next pass finds the hosted row and keeps the file
        self.successResultOf(defer.Deferred.fromCoroutine(evictor.run()))
        self.assertEqual(evictor.pending_files, set())
        self.assertEqual(self.call("GET", "/artifacts/releases/" + JAR)[1], self.dep)

    def test_deploy_survives_the_orphan_sweep(self):
        """A deployed file whose last write is older than cache.orphan_grace_seconds (the rename keeps it) has
        no row for a moment: the orphan sweep run then leaves it."""
        jar = os.urandom(2000)
        storage = self.app.storage
        sweeper = self.app.evictor.orphans
        assert sweeper is not None
        removed: list[tuple[int, int]] = []

        async def sweep_an_old_file() -> None:
            old = self.clock.seconds() - 3600
            os.utime(storage.blob_path(self.digest(jar)), (old, old))
            removed.append(await sweeper.sweep())

        ran = self.before_row(sweep_an_old_file)
        self.assertEqual(self.put("releases", JAR, jar)[0].code, 201)
        self.assertEqual((ran, removed), ([True], [(0, 0)]))
        response, body = self.call("GET", "/artifacts/releases/" + JAR)
        self.assertEqual((response.code, body), (200, jar))

    def test_checksum_sidecar_deploy_is_held_too(self):
        """A checksum sidecar (.sha1) goes through the same commit: its file is held until its row is written."""
        jar = os.urandom(500)
        self.assertEqual(self.put("releases", JAR, jar)[0].code, 201)
        sidecar = hashlib.sha1(jar).hexdigest().encode()
        seen: list[bool] = []

        async def look() -> None:
            seen.append(self.digest(sidecar) in self.app.storage.committing)

        self.before_row(look)
        self.assertEqual(self.put("releases", JAR + ".sha1", sidecar)[0].code, 201)
        self.assertEqual(seen, [True])
        self.assertEqual(self.app.storage.committing.digests(), set())

    def test_refused_redeploy_releases_and_drops_its_file(self):
        """A redeploy refused at the row write (a release raced in) drops the new file: the hold is gone first."""
        self.assertEqual(self.put("releases", JAR, b"first")[0].code, 201)
        index = self.app.index
        real = index.put_hosted_maven_file

        async def race(*args: Any, **kwargs: Any) -> Any:
            kwargs["overwrite"] = False
            return await real(*args, **kwargs)

        self.patch(index, "put_hosted_maven_file", race)
        self.patch(index, "get_entry", lambda *a, **k: defer.succeed(None))  # (the early check sees nothing)
        self.assertEqual(self.put("releases", JAR, b"second")[0].code, 409)
        self.assertFalse(os.path.exists(self.app.storage.blob_path(self.digest(b"second"))))
        self.assertEqual(self.app.storage.committing.digests(), set())
