"""Throughput and CPU of the S3 client (harbor_cache.storage.s3) against moto on loopback.

Starts moto in server mode (tests/s3_support.py; the non-authenticating
server, so moto spends no CPU re-deriving signatures), writes a SIZE MiB
file of random bytes, then with the real reactor:

* ``put_object`` of the file path: one PUT streamed from disk in 1 MiB reads
  on the thread pool (what botocore's ``put_object`` below does, blocking);
* ``put_file``: the file into the bucket as the storage will (multipart above
  64 MiB: 13 parts of 16 MiB, each streamed the same way);
* ``get``: ``get_object`` streamed to /dev/null through a Protocol;

and prints, per phase, wall time, MB/s (1e6 bytes), and the CPU seconds
(user+sys) of this process and of the moto server process.  For scale, the
same two transfers with botocore's own blocking client (``put_object`` of
the open file, ``get_object`` read in 1 MiB pieces) follow.

    python bench/s3_client_bench.py [--mib 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from treq.client import HTTPClient  # noqa: E402
from twisted.internet import defer, protocol, task  # noqa: E402
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone  # noqa: E402

from harbor_cache.storage.io import ThreadIO  # noqa: E402
from harbor_cache.storage.s3 import S3Client, S3Settings  # noqa: E402
from tests import s3_support  # noqa: E402

MiB = 1024 * 1024


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _ToDevNull(protocol.Protocol):
    def __init__(self, done: defer.Deferred[int]) -> None:
        self.done = done
        self.total = 0
        self.sink = open(os.devnull, "wb")  # noqa: SIM115

    def dataReceived(self, data: bytes) -> None:
        self.total += len(data)
        self.sink.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.sink.close()
        if reason is not None and reason.check(ResponseDone):
            self.done.callback(self.total)
        else:
            self.done.errback(reason)


class Measure:
    def __init__(self, moto_pid: int) -> None:
        self.moto_pid = moto_pid

    def __enter__(self) -> Measure:
        self.t, self.c, self.m = time.perf_counter(), cpu_self(), cpu_of(self.moto_pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t
        self.cpu = cpu_self() - self.c
        self.moto = cpu_of(self.moto_pid) - self.m


def report(name: str, size: int, runs: list[Measure]) -> None:
    wall = statistics.median(m.wall for m in runs)
    cpu = statistics.median(m.cpu for m in runs)
    moto = statistics.median(m.moto for m in runs)
    print(
        f"{name:<26} median {size / wall / 1e6:7.1f} MB/s  {wall:6.2f} s wall  client CPU {cpu:5.2f} s"
        f" ({cpu / wall * 100:3.0f}% of a core)  moto CPU {moto:5.2f} s"
        f"   runs: {', '.join(f'{size / m.wall / 1e6:.0f}' for m in runs)} MB/s"
    )


async def ours(reactor: Any, server: s3_support.S3Server, path: str, size: int, runs: int, moto_pid: int) -> None:
    pool = HTTPConnectionPool(reactor, persistent=True)
    http = HTTPClient(Agent(reactor, pool=pool))
    io = ThreadIO(reactor, reactor.getThreadPool())
    settings = S3Settings(
        bucket=server.new_bucket("bench"),
        endpoint=server.endpoint,
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
        addressing="path",
    )
    client = S3Client(settings, http, io, reactor)
    puts, singles, gets = [], [], []
    for _ in range(runs):
        with Measure(moto_pid) as m:
            await client.put_object("single", path)
        singles.append(m)
        with Measure(moto_pid) as m:
            await client.put_file("big", path)
        puts.append(m)
        with Measure(moto_pid) as m:
            response = await client.get_object("big")
            done: defer.Deferred[int] = defer.Deferred()
            response.deliverBody(_ToDevNull(done))
            got = await done
        assert got == size, (got, size)
        gets.append(m)
    await pool.closeCachedConnections()
    report("put_object file (ours)", size, singles)
    report("put_file multipart (ours)", size, puts)
    report("get -> /dev/null (ours)", size, gets)


def botocores(server: s3_support.S3Server, path: str, size: int, runs: int, moto_pid: int) -> None:
    client = server.botocore_client()
    bucket = server.new_bucket("bench-botocore")
    puts, gets = [], []
    for _ in range(runs):
        with Measure(moto_pid) as m, open(path, "rb") as f:
            client.put_object(Bucket=bucket, Key="big", Body=f)
        puts.append(m)
        with Measure(moto_pid) as m:
            body = client.get_object(Bucket=bucket, Key="big")["Body"]
            got = sum(len(chunk) for chunk in iter(functools.partial(body.read, MiB), b""))
        assert got == size
        gets.append(m)
    report("put_object (botocore)", size, puts)
    report("get (botocore)", size, gets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-botocore", action="store_true", help="skip the botocore comparison")
    args = parser.parse_args()
    size = args.mib * MiB
    clean = s3_support.clean_aws_environment().__enter__()  # for the whole process (the moto server too)
    server = s3_support.server(check_signatures=False)
    moto_pid = s3_support._state["processes"][-1].pid
    tmp = tempfile.TemporaryDirectory()
    path = os.path.join(tmp.name, "big")
    with open(path, "wb") as f:
        for _ in range(args.mib):
            f.write(os.urandom(MiB))
    print(f"{args.mib} MiB file, {args.runs} runs each, moto at {server.endpoint}, nproc {os.cpu_count()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    if not args.no_botocore:
        botocores(server, path, size, args.runs, moto_pid)  # blocking, before the reactor runs

    async def run(reactor: Any) -> None:
        try:
            await ours(reactor, server, path, size, args.runs, moto_pid)
        finally:
            tmp.cleanup()
            clean.__exit__()

    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor)))  # exits; atexit stops moto


if __name__ == "__main__":
    main()
