"""Garbage collection of hosted content (core.hosted.gc over index.gc), on SQLite and PostgreSQL.

The collector runs over a real index (both engines) and a dictionary of
files: what goes, what stays (tags, indexes, referrers, the grace period,
proxied content), the order of the sweep, dry runs, the history, and the
races with pushes (a claim written between the mark and the sweep; a
manifest PUT or mount naming a blob swept a moment before).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.flight.leases import LeaseBook
from harbor_cache.core.hosted.gc import GarbageCollector, GcBusy
from harbor_cache.index import Index
from harbor_cache.index.hosted import ReferenceGone
from harbor_cache.metrics import Metrics
from harbor_cache.storage.commits import Commit, CommitHolds, Watch
from harbor_cache.testing import InlinePool
from tests import pg_support
from tests.unit.base import inline_index, run, sqlite_pool

T0 = 1_700_000_000.0
GRACE = 3600
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def d(name: str) -> str:
    return "sha256:" + name.encode().hex().ljust(64, "0")[:64]


class Files:
    """The store, as the collector sees it: bytes by digest."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.committing = CommitHolds()  # (pushes holding digests: `storage.commits`)

    async def delete_blob(self, digest: str, watch: Watch | None = None) -> bool:
        if self.committing.kept(digest, watch):
            return False
        return self.files.pop(digest, None) is not None

    async def read_bytes(self, digest: str) -> bytes:
        try:
            return self.files[digest]
        except KeyError:
            raise OSError(digest) from None


class Settings:
    def __init__(self) -> None:
        self.values: dict[str, int] = {"gc.grace_seconds": GRACE, "gc.interval_seconds": 86400, "gc.history": 50}

    def get(self, key: str) -> int:
        return self.values[key]


class Audit:
    def __init__(self) -> None:
        self.records: list[tuple[str, Any, Any]] = []

    async def record(self, action: str, *, actor: Any, target: Any = None, detail: Any = None, request: Any = None):
        self.records.append((action, actor, detail))


if TYPE_CHECKING:
    _Case = SynchronousTestCase
else:
    _Case = object  # (trial must not collect the mixin itself)


class CollectMixin(_Case):
    """The cases; the subclasses give an index on one engine."""

    def open_pool(self) -> Any:
        raise NotImplementedError

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.index = Index(self.open_pool())
        run(self, self.index.migrate())
        self.files = Files()
        self.settings = Settings()
        self.audit = Audit()
        self.metrics = Metrics()
        self.forgotten: list[tuple[str, str, str]] = []
        self.gc = self.collector()

    def collector(self) -> GarbageCollector:
        gc = GarbageCollector(
            index=self.index,
            storage=self.files,
            settings=self.settings,
            metrics=self.metrics,
            clock=self.clock,
            audit=self.audit,
            cooperate=lambda: defer.succeed(None),
            batch_size=2,
        )
        gc.invalidators.append(lambda *key: self.forgotten.append(key))
        return gc

    # -- pushing, as the hosted registry records it ------------------------------------

    def blob(self, name: str, repository: str = "team/app", size: int = 10) -> str:
        digest = d(name)
        self.files.files[digest] = b"x" * size
        run(
            self,
            self.index.put_entry(
                kind="hosted",
                type_="blob",
                repository="",
                key=digest,
                digest=digest,
                size=size,
                now=self.clock.seconds(),
            ),
        )
        self.assertTrue(run(self, self.index.claim_blob(repository, digest, self.clock.seconds())))
        return digest

    def manifest(
        self,
        name: str,
        blobs: list[str] = (),  # type: ignore[assignment]
        *,
        tag: str | None = None,
        repository: str = "team/app",
        children: list[str] = (),  # type: ignore[assignment]
        subject: str | None = None,
        media_type: str = OCI_MANIFEST,
    ) -> str:
        digest = d(name)
        self.files.files[digest] = b"{}"
        run(
            self,
            self.index.put_hosted_manifest(
                repository=repository,
                key=digest,
                digest=digest,
                size=2,
                media_type=media_type,
                now=self.clock.seconds(),
                tag=tag,
                referrer=None if subject is None else {"subject": subject},
                blobs=list(blobs),
                children=list(children),
            ),
        )
        return digest

    def later(self, seconds: float = GRACE + 1) -> None:
        self.clock.advance(seconds)

    def collect(self, **kw: Any) -> dict:
        return run(self, self.gc.collect(**kw))

    def has_manifest(self, digest: str, repository: str = "team/app") -> bool:
        return run(self, self.index.get_entry("manifest", repository, digest)) is not None

    def has_blob(self, digest: str) -> bool:
        return run(self, self.index.get_entry("blob", "", digest)) is not None and digest in self.files.files

    # -- the cases -------------------------------------------------------------------

    def test_untagged_goes_after_the_grace_period_with_its_blobs(self) -> None:
        """An image pushed by digest stays for gc.grace_seconds, then goes with its layers and files."""
        layer, config = self.blob("layer", size=100), self.blob("config", size=7)
        image = self.manifest("image", [layer, config])
        self.later(GRACE - 10)
        report = self.collect()
        self.assertEqual((report["manifests"], report["blobs"], report["freed_bytes"]), (0, 0, 0))
        self.assertTrue(self.has_manifest(image) and self.has_blob(layer))
        self.later(20)
        report = self.collect()
        self.assertEqual((report["manifests"], report["blobs"], report["freed_bytes"]), (1, 2, 109))
        self.assertFalse(self.has_manifest(image))
        self.assertFalse(self.has_blob(layer) or self.has_blob(config))
        self.assertEqual(self.files.files, {})
        self.assertIn(("manifest", "team/app", image), self.forgotten)
        self.assertIn(("blob", "", layer), self.forgotten)

    def test_tagged_stays_and_shared_layers_stay(self) -> None:
        """Deleting a tag frees the image's own layers; a layer another tagged image needs stays."""
        shared, own_a, own_b = self.blob("shared"), self.blob("a"), self.blob("b")
        a = self.manifest("A", [shared, own_a], tag="a")
        b = self.manifest("B", [shared, own_b], tag="b")
        self.later()
        self.assertEqual(self.collect()["manifests"], 0)
        self.assertEqual(run(self, self.index.delete_hosted_tag("team/app", "a")), a)
        report = self.collect()
        self.assertEqual((report["manifests"], report["blobs"]), (1, 1))
        self.assertFalse(self.has_manifest(a) or self.has_blob(own_a))
        self.assertTrue(self.has_manifest(b) and self.has_blob(shared) and self.has_blob(own_b))

    def test_a_push_of_the_same_bytes_during_the_recheck_keeps_the_file(self) -> None:
        """The blob's row is swept; a push of the same bytes holds, renames and writes its row while the
        collector's re-check reads the index (an answer older than the row): the file stays for that row."""
        layer = self.blob("layer")
        self.later()
        real = self.index.digests_referenced

        async def stale_check(digests: list[str]) -> set[str]:
            answer = await real(digests)
            with Commit(self.files.committing) as push:  # (the push: file in place again, row written)
                push.add(layer)
            return answer

        self.patch(self.index, "digests_referenced", stale_check)
        self.assertEqual(self.collect()["blobs"], 1)
        self.assertIn(layer, self.files.files)

    def test_deleted_manifest_leaves_layers_that_gc_frees(self) -> None:
        """DELETE of a hosted manifest (202) removes rows only; the collector frees its layers."""
        layer = self.blob("layer")
        image = self.manifest("image", [layer], tag="v1")
        kind, orphans = run(self, self.index.delete_hosted_entry("manifest", "team/app", image))
        self.assertEqual(kind, "hosted")
        self.assertTrue(self.has_blob(layer))
        self.later()
        self.assertEqual(self.collect()["blobs"], 1)
        self.assertFalse(self.has_blob(layer))

    def test_index_keeps_children_and_goes_with_them(self) -> None:
        """Children of a tagged index stay; untagged, the index and its children go in one run."""
        l1, l2 = self.blob("l1"), self.blob("l2")
        amd, arm = self.manifest("amd", [l1]), self.manifest("arm", [l2])
        index = self.manifest("index", tag="v1", children=[amd, arm], media_type=OCI_INDEX)
        self.later()
        self.assertEqual(self.collect()["manifests"], 0)
        run(self, self.index.delete_hosted_tag("team/app", "v1"))
        report = self.collect()
        self.assertEqual((report["manifests"], report["blobs"]), (3, 2))
        self.assertFalse(any(self.has_manifest(m) for m in (amd, arm, index)))

    def test_legacy_index_children_are_read_from_its_body(self) -> None:
        """An index pushed before children were recorded: its body names them, so they stay."""
        child = self.manifest("child", [self.blob("l")])
        body = ('{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"%s","size":2}]}') % (
            OCI_INDEX,
            OCI_MANIFEST,
            child,
        )
        index = self.manifest("index", tag="v1", media_type=OCI_INDEX)
        self.files.files[index] = body.encode()
        self.later()
        self.assertEqual(self.collect()["manifests"], 0)
        self.assertTrue(self.has_manifest(child))

    def test_referrer_follows_its_subject(self) -> None:
        """A signature stays while its image is kept and goes with it; it never keeps the image alive."""
        image = self.manifest("image", [self.blob("l")], tag="v1")
        signature = self.manifest("sig", [self.blob("s")], subject=image)
        self.later()
        self.assertEqual(self.collect()["manifests"], 0)
        run(self, self.index.delete_hosted_tag("team/app", "v1"))
        report = self.collect()
        self.assertEqual((report["manifests"], report["blobs"]), (2, 2))
        self.assertFalse(self.has_manifest(signature) or self.has_manifest(image))

    def test_proxied_content_is_never_touched(self) -> None:
        """Cached entries are eviction's: an unreferenced proxy blob stays."""
        digest = d("cached")
        self.files.files[digest] = b"c"
        run(
            self,
            self.index.put_entry(kind="proxy", type_="blob", repository="", key=digest, digest=digest, size=1, now=T0),
        )
        self.later()
        self.assertEqual(self.collect()["blobs"], 0)
        self.assertTrue(self.has_blob(digest))

    def test_dry_run_removes_nothing(self) -> None:
        layer = self.blob("layer", size=50)
        image = self.manifest("image", [layer])
        self.later()
        report = self.collect(dry_run=True)
        self.assertEqual(
            (report["dry_run"], report["manifests"], report["blobs"], report["freed_bytes"]), (True, 1, 1, 52)
        )
        self.assertTrue(self.has_manifest(image) and self.has_blob(layer))
        self.assertEqual(self.metrics.gc_runs._value.get(), 0)
        report = self.collect()
        self.assertEqual((report["manifests"], report["blobs"], report["freed_bytes"]), (1, 1, 52))
        self.assertEqual(self.metrics.gc_runs._value.get(), 1)
        self.assertEqual(self.metrics.gc_freed_bytes._value.get(), 52)
        self.assertEqual(self.metrics.gc_removed.labels("blob")._value.get(), 1)
        self.assertEqual([r[0] for r in self.audit.records], ["gc.run", "gc.run"])
        self.assertEqual(self.audit.records[1][2]["freed_bytes"], 52)

    def test_history_keeps_the_last_runs(self) -> None:
        self.settings.values["gc.history"] = 3
        for _ in range(5):
            self.collect()
            self.later(1)
        runs = run(self, self.gc.runs(10))
        self.assertEqual(len(runs), 3)
        self.assertEqual([r["reason"] for r in runs], ["manual"] * 3)
        self.assertGreater(runs[0]["id"], runs[1]["id"])

    def test_schedule(self) -> None:
        """Due gc.interval_seconds after the last real run (dry runs do not count); 0 is off."""
        self.settings.values["gc.interval_seconds"] = 100
        self.assertIsNone(run(self, self.gc.run_if_due()))
        self.later(100)
        self.assertEqual(run(self, self.gc.run_if_due())["reason"], "schedule")
        self.later(50)
        self.collect(dry_run=True)
        self.assertIsNone(run(self, self.gc.run_if_due()))
        self.later(50)
        self.assertIsNotNone(run(self, self.gc.run_if_due()))
        self.settings.values["gc.interval_seconds"] = 0
        self.later(1000)
        self.assertIsNone(run(self, self.gc.run_if_due()))

    def test_one_collection_at_a_time(self) -> None:
        """A second collection while one runs is refused (409), in this process."""
        gate: Deferred = Deferred()
        self.gc._cooperate = lambda: gate
        self.blob("a")
        self.blob("b")
        self.blob("c")
        self.later()
        first = Deferred.fromCoroutine(self.gc.collect())
        self.assertNoResult(first)
        self.failureResultOf(Deferred.fromCoroutine(self.gc.collect()), GcBusy)
        gate.callback(None)
        self.assertEqual(self.successResultOf(first)["blobs"], 3)

    # -- races with pushes --------------------------------------------------------

    def test_claim_between_mark_and_sweep_keeps_the_blob(self) -> None:
        """Blob uploaded long ago, unreferenced: marked garbage; a mount claims it before its batch: it stays."""
        old = [self.blob(f"b{i}") for i in range(4)]
        self.later()
        gate: Deferred = Deferred()
        self.gc._cooperate = lambda: gate
        running = Deferred.fromCoroutine(self.gc.collect())  # first batch (b0, b1) swept, then waits
        self.assertFalse(self.has_blob(old[0]))
        self.assertTrue(run(self, self.index.claim_blob("other/app", old[3], self.clock.seconds())))
        gate.callback(None)
        self.assertEqual(self.successResultOf(running)["blobs"], 3)
        self.assertTrue(self.has_blob(old[3]))

    def test_manifest_put_between_mark_and_sweep_keeps_its_blobs(self) -> None:
        """The manifest names blobs that were garbage at the mark: the sweep sees its refs and keeps them."""
        a, _b, c = self.blob("a"), self.blob("b"), self.blob("c")
        self.later()
        gate: Deferred = Deferred()
        self.gc._cooperate = lambda: gate
        running = Deferred.fromCoroutine(self.gc.collect())  # a and b swept, c waits for the next batch
        self.assertFalse(self.has_blob(a))
        self.manifest("late", [c], tag="v1")
        gate.callback(None)
        self.assertEqual(self.successResultOf(running)["blobs"], 2)
        self.assertTrue(self.has_blob(c))

    def test_push_naming_a_swept_blob_fails_cleanly(self) -> None:
        """Blob uploaded, swept (grace over), then the manifest PUT and a mount: refused, nothing recorded."""
        layer = self.blob("layer")
        self.later()
        self.assertEqual(self.collect()["blobs"], 1)
        failure = self.failureResultOf(
            Deferred.fromCoroutine(
                self.index.put_hosted_manifest(
                    repository="team/app",
                    key=d("m"),
                    digest=d("m"),
                    size=2,
                    media_type=OCI_MANIFEST,
                    now=self.clock.seconds(),
                    tag="v1",
                    referrer=None,
                    blobs=[layer],
                )
            ),
            ReferenceGone,
        )
        self.assertEqual(failure.value.digest, layer)
        self.assertFalse(self.has_manifest(d("m")))
        self.assertIsNone(run(self, self.index.get_tag("team/app", "v1")))
        self.assertFalse(run(self, self.index.claim_blob("other/app", layer, self.clock.seconds())))

    def test_repush_renews_the_grace(self) -> None:
        """Pushing an untagged manifest again (or uploading a blob again) restarts its grace period."""
        layer = self.blob("layer")
        image = self.manifest("image", [layer])
        self.later(GRACE - 1)
        self.manifest("image", [layer])
        self.blob("layer")
        self.later(10)
        report = self.collect()
        self.assertEqual((report["manifests"], report["blobs"]), (0, 0))
        self.assertTrue(self.has_manifest(image))


class SqliteCollectTests(CollectMixin, SynchronousTestCase):
    def open_pool(self) -> Any:
        return sqlite_pool(self)


class PostgresCollectTests(CollectMixin, SynchronousTestCase):
    def open_pool(self) -> Any:
        self.url = pg_support.fresh_schema_url(self)
        pool = InlinePool.postgres(self.url)
        self.addCleanup(pool.close)
        return pool

    def test_one_collector_across_nodes(self) -> None:
        """Two nodes on one index: while one collects (holding the "gc" lease), the other is refused."""
        self.gc.leases = LeaseBook(self.index, "node-a", self.clock)
        other = self.collector()
        other.leases = LeaseBook(self.index, "node-b", self.clock)
        other.node = "node-b"
        gate: Deferred = Deferred()
        self.gc._cooperate = lambda: gate
        self.blob("a")
        self.blob("b")
        self.blob("c")
        self.later()
        first = Deferred.fromCoroutine(self.gc.collect())
        self.assertNoResult(first)
        self.failureResultOf(Deferred.fromCoroutine(other.collect()), GcBusy)
        self.settings.values["gc.interval_seconds"] = 1  # due, but the other node is collecting: skipped
        self.assertIsNone(run(self, other.run_if_due()))
        gate.callback(None)
        self.assertEqual(self.successResultOf(first)["blobs"], 3)
        self.assertEqual(run(self, other.collect())["node"], "node-b")

    def test_sweep_waits_for_a_push_holding_the_blob(self) -> None:
        """Another node's manifest PUT holds the blob's row (FOR SHARE) and adds its ref, not yet committed:
        the sweep waits for it, then sees the ref and keeps the blob."""
        import psycopg2

        layer = self.blob("layer")
        self.later()
        pusher = psycopg2.connect(self.url)
        self.addCleanup(pusher.close)
        cur = pusher.cursor()
        cur.execute("SELECT 1 FROM entries WHERE type = 'blob' AND key = %s FOR SHARE", (layer,))
        cur.execute(
            "INSERT INTO blob_refs (repository, digest, manifest) VALUES ('team/app', %s, 'sha256:m')", (layer,)
        )
        outcome: list = []
        sweeper_pool = InlinePool.postgres(self.url)
        self.addCleanup(sweeper_pool.close)
        sweeper = inline_index(sweeper_pool)
        worker = threading.Thread(
            target=lambda: Deferred.fromCoroutine(
                sweeper.gc_sweep_blobs([layer], self.clock.seconds() - GRACE)
            ).addBoth(outcome.append)
        )
        worker.start()
        watcher = psycopg2.connect(self.url)
        self.addCleanup(watcher.close)
        watcher.autocommit = True
        deadline = time.monotonic() + 10
        while not outcome and time.monotonic() < deadline:  # until the sweep waits for the pusher's lock
            with watcher.cursor() as w:
                w.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                if w.fetchone()[0]:
                    break
        self.assertEqual(outcome, [])
        pusher.commit()
        worker.join(10)
        self.assertEqual(outcome, [([], [])])
        self.assertTrue(self.has_blob(layer))
