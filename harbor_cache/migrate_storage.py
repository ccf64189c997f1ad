"""``python -m harbor_cache.migrate_storage`` (``harbor-cache-migrate-storage``): copy ``data_dir/blobs`` into the bucket.

The command that moves an existing file-system cache to a bucket
(docs/operations.md, "Moving a file-system cache to a bucket").  It reads the
*target* configuration: the same file the node will run with afterwards, with
``[storage] backend = "s3"`` and its bucket, endpoint, prefix and
credentials; ``data_dir`` (or ``--data-dir``) names the directory whose
``blobs/`` is copied.  The copy (`harbor_cache.storage.migrate`) skips what
the bucket already has, so it can run while the old node still serves, be
interrupted and run again; a last run with the node stopped copies the rest.
The index needs no change: object keys are the data directory's paths.

Exit status: 0 when every file is in the bucket, 1 when any failed (each is
listed), 2 for a configuration that cannot be used.  Outside every layer
(like process.py): it only wires settings, the S3 client and the copy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from harbor_cache.settings.startup import ConfigError, load_config
from harbor_cache.settings.storage import StorageConfigError

MB = 1e6


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="harbor-cache-migrate-storage",
        description='Copy a data directory\'s blobs/ into the [storage] backend = "s3" bucket of the config.',
    )
    ap.add_argument("--config", required=True, help='the configuration to run with afterwards (backend = "s3")')
    ap.add_argument("--data-dir", default=None, help="the data directory to copy from (default: the config's)")
    ap.add_argument("--verify", action="store_true", help="hash every file before it is uploaded (reads it twice)")
    ap.add_argument("--jobs", type=int, default=4, help="files uploaded at once (1-64, default 4)")
    ap.add_argument("--dry-run", action="store_true", help="only report what would be copied")
    ap.add_argument("--progress-seconds", type=float, default=5.0, help="seconds between progress lines (default 5)")
    args = ap.parse_args(argv)
    if not 1 <= args.jobs <= 64:
        ap.error("--jobs: must be between 1 and 64")
    return args


def fail(message: str) -> SystemExit:
    print(f"harbor-cache-migrate-storage: {message}", file=sys.stderr)
    return SystemExit(2)


async def run(reactor: Any, argv: list[str]) -> None:
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    from harbor_cache.storage.bucket import s3_settings
    from harbor_cache.storage.io import ThreadIO
    from harbor_cache.storage.migrate import migrate
    from harbor_cache.storage.s3 import S3Client

    args = parse_args(argv)
    try:
        config = load_config(args.config, data_dir=args.data_dir)
    except (ConfigError, StorageConfigError, ValueError) as e:
        raise fail(str(e)) from None
    if not config.storage.s3:
        raise fail(f'{args.config}: [storage] backend must be "s3" (the bucket to copy into)')
    blob_dir = os.path.join(os.path.abspath(config.data_dir), "blobs")
    if not os.path.isdir(blob_dir):
        raise fail(f"{blob_dir}: no such directory (is data_dir or --data-dir the file-system cache's?)")
    try:
        settings = s3_settings(config.storage)
    except ValueError as e:
        raise fail(str(e)) from None
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = args.jobs + 2
    client = S3Client(
        settings, HTTPClient(Agent(reactor, pool=pool)), ThreadIO(reactor, reactor.getThreadPool()), reactor
    )
    print(
        f"copying {blob_dir} into bucket {settings.bucket} at {settings.endpoint_url} (prefix {settings.prefix!r})"
        + (" [dry run]" if args.dry_run else ""),
        flush=True,
    )
    start = last = time.monotonic()

    def progress(report: Any) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= args.progress_seconds:
            last = now
            print(
                f"  {report.done}/{report.total} files: {report.copied} copied ({report.copied_bytes / MB:.1f} MB), "
                f"{report.skipped} already there, {len(report.failed)} failed",
                flush=True,
            )

    try:
        report = await migrate(
            client, client._io, blob_dir, verify=args.verify, jobs=args.jobs, progress=progress, dry_run=args.dry_run
        )
    finally:
        await pool.closeCachedConnections()
    elapsed = time.monotonic() - start
    verb = "to copy" if args.dry_run else "copied"
    print(
        f"done in {elapsed:.1f}s: {report.total} files ({report.total_bytes / MB:.1f} MB); {report.copied} {verb} "
        f"({report.copied_bytes / MB:.1f} MB), {report.skipped} already in the bucket, {report.gone} gone meanwhile, "
        f"{len(report.failed)} failed, {len(report.ignored)} other entries left alone",
        flush=True,
    )
    for name in report.ignored[:20]:
        print(f"  left alone (not content): blobs/{name}", flush=True)
    for digest, reason in report.failed:
        print(f"  FAILED {digest}: {reason}", file=sys.stderr, flush=True)
    if report.failed:
        print("some files are not in the bucket: run the command again (it resumes) before switching", file=sys.stderr)
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    from twisted.internet import defer, task

    args = sys.argv[1:] if argv is None else argv
    task.react(lambda reactor: defer.ensureDeferred(run(reactor, args)))


if __name__ == "__main__":
    main()
