"""What fsync before the rename (and of the directory after it) costs a commit.

Writes N files of SIZE bytes through `Storage.new_temp(...).finish()` (write,
hash, fsync, rename, directory fsync) with fsync on and with it patched out,
on the data directory's filesystem, and prints the median time per commit.

    python bench/fsync_bench.py [--dir DIR] [--count 50] [--sizes 4096,1048576,67108864]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer  # noqa: E402

from harbor_cache.storage import Storage, disk  # noqa: E402
from harbor_cache.testing import InlineIO  # noqa: E402


def commit_times(root, size, count):
    store = Storage(root, InlineIO())
    times = []
    for _ in range(count):
        data = os.urandom(size)
        start = time.perf_counter()
        temp = store.new_temp(len(data))
        temp.write(data)
        d = defer.Deferred.fromCoroutine(temp.finish())
        assert d.called, "InlineIO finishes synchronously"
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", default=None)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--sizes", default="4096,1048576,67108864")
    args = p.parse_args()
    base = tempfile.mkdtemp(prefix="fsync-bench-", dir=args.dir)
    real_file, real_dir = disk.sync_file, disk.sync_dir
    try:
        print("| size | with fsync (ms/commit) | without (ms/commit) | extra |")
        print("|---|---|---|---|")
        for size in [int(s) for s in args.sizes.split(",")]:
            count = max(3, args.count if size < (16 << 20) else args.count // 6)
            disk.sync_file, disk.sync_dir = real_file, real_dir
            on = commit_times(os.path.join(base, "on-%d" % size), size, count)
            disk.sync_file = disk.sync_dir = lambda *_: None
            off = commit_times(os.path.join(base, "off-%d" % size), size, count)
            print("| %d | %.2f | %.2f | %.2f ms |" % (size, on * 1e3, off * 1e3, (on - off) * 1e3))
    finally:
        disk.sync_file, disk.sync_dir = real_file, real_dir
        shutil.rmtree(base, True)


if __name__ == "__main__":
    main()
