#!/usr/bin/env python3
"""Where the cold path's time goes: treq into a TempBlob, with no client reading.

    python3 bench/cold_download_probe.py URL-OF-A-LARGE-BLOB [--runs 3]

Prints, per run, the time to receive the body with each stage switched on:
`discard` (receive only), `write` (append to a temp file), `hash` (sha256
only), `both` (what the cache does).  Run it against the upstream registry
of the OCI bench (e.g. http://127.0.0.1:5000/v2/library/test/blobs/<digest>).
"""

import argparse
import shutil
import tempfile
import time

from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.internet.protocol import Protocol
from twisted.python.threadpool import ThreadPool
from twisted.web.client import Agent, HTTPConnectionPool

from harbor_cache.storage import Storage, ThreadIO
from harbor_cache.upstream.body import READ_SIZE, stream_to_temp


class _Discard(Protocol):
    def __init__(self, done):
        self.done = done

    def connectionMade(self):
        self.transport._producer.bufferSize = READ_SIZE

    def connectionLost(self, reason):
        self.done.callback(None)


async def probe(url: str, runs: int) -> None:
    pool = ThreadPool(4, 4, name="probe-io")
    pool.start()
    root = tempfile.mkdtemp(prefix="cold-probe-")
    storage = Storage(root, ThreadIO(reactor, pool))
    http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor)))
    try:
        for mode in ("discard", "write", "hash", "both"):
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                response = await http.get(url, unbuffered=True)
                if mode == "discard":
                    done = defer.Deferred()
                    response.deliverBody(_Discard(done))
                    await done
                else:
                    temp = storage.new_temp(response.length)
                    if mode == "write":
                        temp._writer.work = temp._write_chunks
                    elif mode == "hash":
                        temp._writer.work = lambda chunks, h=temp._hashers["sha256"]: [h.update(c) for c in chunks]
                    await stream_to_temp(response, temp, reactor, 30, lambda n: None)
                    await temp._wait_drained()
                    temp.abort(Exception("probe done"))
                times.append(time.perf_counter() - t0)
            print(f"{mode:8s} " + "  ".join(f"{t:.3f}s" for t in times))
    finally:
        pool.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    def run():
        d = defer.Deferred.fromCoroutine(probe(args.url, args.runs))
        d.addErrback(lambda f: print(f.getTraceback()))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()


if __name__ == "__main__":
    main()
