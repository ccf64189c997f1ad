#!/usr/bin/env python3
"""Scale-out bench: manifest by tag and a warm 200 MiB blob on three set-ups, in one run.

1. one node, sqlite index (the embedded default);
2. one node, PostgreSQL index (the tests' throwaway cluster, `tests.pg_support`);
3. two nodes, one PostgreSQL index and one data directory, behind a loopback nginx
   (``upstream`` with both servers, round robin per request).

Everything listens on 127.0.0.1: a distribution registry with the test image
(``--large-mib`` layer), the harbor-cache processes, PostgreSQL and nginx.

    python3 bench/scaleout_bench.py [--large-mib 200] [--runs 3] [--wrk-seconds 5]

Figures: ``manifest``: ``wrk -t2 -c16 -d<s>s -H 'Accept: <oci manifest>' <base>/v2/library/test/manifests/1``
(warmed by one GET); ``warm blob``: ``curl -o /dev/null -w %{speed_download}`` of the large layer, one untimed
GET first, then the median of ``--runs``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import pg_support  # noqa: E402
from tests.integration import support  # noqa: E402
from tests.integration.test_scaleout_it import RoundRobinNginx  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def curl_speed(url: str) -> float:
    out = subprocess.run(
        ["curl", "-sf", "-o", "/dev/null", "-w", "%{speed_download}", url], capture_output=True, text=True, check=True
    ).stdout
    return float(out) / 1e6


def wrk(url: str, seconds: int) -> tuple[float, str]:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", "-d%ds" % seconds, "-H", "Accept: " + OCI_MANIFEST, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, bad.group(1) if bad else "0"


def measure(label: str, base: str, digest: str, args) -> list[str]:
    blob = "%s/v2/library/test/blobs/%s" % (base, digest)
    manifest = "%s/v2/library/test/manifests/1" % base
    curl_speed(blob)  # warm: the first GET downloads it
    subprocess.run(["curl", "-sf", "-o", "/dev/null", "-H", "Accept: " + OCI_MANIFEST, manifest], check=True)
    speeds = [curl_speed(blob) for _ in range(args.runs)]
    rate, bad = wrk(manifest, args.wrk_seconds)
    return [
        "%-28s warm blob median %7.1f MB/s  runs: %s"
        % (label, statistics.median(speeds), ", ".join("%.0f" % s for s in speeds)),
        "%-28s manifest  %9.0f req/s  (non-2xx: %s)" % (label, rate, bad),
    ]


def new_database() -> str:
    name = "bench_%d" % os.getpid()
    pg_support.admin("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
    pg_support.admin("CREATE DATABASE %s" % name)
    return pg_support._with(pg_support.server_url(), path="/" + name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--large-mib", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    args = parser.parse_args()
    layout, images = support.oci_layout(large=args.large_mib)
    layer = max(images["images"]["large"]["layers"], key=lambda l: l["size"])
    reg = support.Registry()
    lines = [
        "blob %s, %d bytes (%.1f MiB); MB = 1e6 bytes; nproc %d; load before: %s"
        % (
            layer["digest"],
            layer["size"],
            layer["size"] / 2**20,
            os.cpu_count(),
            open("/proc/loadavg").read().split()[:3],
        )
    ]
    peers = []
    try:
        support.push_layout(layout, reg.hostport, "library/test", names=["single", "large"])
        config = support.oci_config(reg.url)

        one = support.HarborServer(config)
        peers.append(one)
        lines += measure("1 node, sqlite", one.url, layer["digest"], args)
        one.close()

        url = new_database()
        index = support._toml_table("[index]", {"url": url, "node_name": "bench-a"})
        pg_one = support.HarborServer(config + "\n" + index)
        peers.append(pg_one)
        lines += measure("1 node, PostgreSQL", pg_one.url, layer["digest"], args)
        pg_one.close()

        url = new_database()
        shared = tempfile.mkdtemp(prefix="harbor-bench-shared-")
        nodes = []
        for name in ("bench-a", "bench-b"):
            index = support._toml_table("[index]", {"url": url, "node_name": name})
            node = support.HarborServer(config + "\n" + index, data_dir=shared)
            nodes.append(node)
            peers.append(node)
        lb = RoundRobinNginx([n.hostport for n in nodes])
        peers.append(lb)
        lines += measure("2 nodes, PostgreSQL, nginx", lb.url, layer["digest"], args)
        shutil.rmtree(shared, ignore_errors=True)
    finally:
        for p in peers:
            p.close()
        reg.close()
        pg_support.stop()
    lines.append("load after: %s" % open("/proc/loadavg").read().split()[:3])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
