#!/usr/bin/env python3
"""The floor under a verified cold GET on this machine, next to distribution's proxy.

harbor-cache never lets a client receive the last byte of a cold blob before
the sha256 of the whole body has been checked (storage/reader.py: the held-back
last byte), so a cold GET can end no sooner than

* ``hash``: one core's sha256 of the whole blob (OpenSSL through hashlib, 1 MiB
  updates; sha256 is sequential, it cannot be split over cores), and no sooner than
* ``share``: the CPU that the whole transfer needs on this machine (the upstream
  registry's, curl's and harbor-cache's own, the sha256 included), divided by the
  number of cores, since all of them run on the same cores.

distribution 2.8's proxy does neither on the client's path: it relays the
upstream's bytes and stores the blob from a second fetch of its own in the
background (proxy/proxyblobstore.go, ``storeLocal``), so its client is done
before its hash is.  The script measures, per run: curl's wall time and the CPU
of each process over the GET for distribution direct, distribution's proxy
(fresh storage each run) and harbor-cache (fresh data dir each run), and prints
the two floors against the proxy's median.  Usage::

    python3 bench/cold_floor.py [--runs 5] [--large-mib 200]
"""

import argparse
import hashlib
import os
import resource
import statistics
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from bench.oci_bench import DistributionProxy, cpu_seconds, curl_get  # noqa: E402
from tests.integration import oci_support as oci  # noqa: E402
from tests.integration import support  # noqa: E402


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measured_get(url: str, pids: dict[str, int]) -> dict[str, float]:
    """curl's wall time and the CPU seconds of curl and of each of ``pids`` over one GET."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    curl_before = children_cpu()
    wall = curl_get(url)[0]
    out = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    out["curl"] = children_cpu() - curl_before
    out["wall"] = wall
    return out


def sha256_seconds(data: bytes) -> float:
    view = memoryview(data)
    start = time.perf_counter()
    h = hashlib.sha256()
    for i in range(0, len(view), 1 << 20):
        h.update(view[i : i + (1 << 20)])
    return time.perf_counter() - start


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--large-mib", type=int, default=200)
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1

    layout, images = support.oci_layout(large=args.large_mib)
    layer = max(images["images"]["large"]["layers"], key=lambda entry: entry["size"])
    blob_path = "/v2/library/test/blobs/" + layer["digest"]
    with open(os.path.join(layout, "blobs", "sha256", layer["digest"].split(":", 1)[1]), "rb") as f:
        body = f.read()
    reg = support.Registry()
    support.push_layout(layout, reg.hostport, "library/test", names=["single", "large"])
    proxy = DistributionProxy(reg.url)
    print(
        "blob %s, %.1f MiB; %d runs; nproc %d; loadavg at start %s"
        % (layer["digest"][:19], len(body) / (1 << 20), args.runs, cores, open("/proc/loadavg").read().split()[0])
    )
    rows: dict[str, list[dict[str, float]]] = {"direct": [], "dist-proxy": [], "harbor": []}
    hashes = []
    try:
        for _ in range(args.runs):
            hashes.append(sha256_seconds(body))
            rows["direct"].append(measured_get(reg.url + blob_path, {"registry": reg._daemon.pid}))
            proxy.cold_start()
            rows["dist-proxy"].append(
                measured_get(proxy.url + blob_path, {"registry": reg._daemon.pid, "proxy": proxy.daemon.pid})
            )
            srv = support.HarborServer(oci.harbor_config(reg.url))
            try:
                rows["harbor"].append(
                    measured_get(srv.url + blob_path, {"registry": reg._daemon.pid, "harbor": srv.pid})
                )
            finally:
                srv.close()
    finally:
        proxy.close()
        reg.close()

    def med(name: str, key: str) -> float:
        return statistics.median(r.get(key, 0.0) for r in rows[name])

    t_hash = statistics.median(hashes)
    print("sha256 of the blob, one core: median %.3f s (%.2f GB/s)" % (t_hash, len(body) / t_hash / 1e9))
    for name, procs in (
        ("direct", ("registry",)),
        ("dist-proxy", ("registry", "proxy")),
        ("harbor", ("registry", "harbor")),
    ):
        cpu = ", ".join("%s %.3f" % (p, med(name, p)) for p in procs + ("curl",))
        print("%-10s wall median %.3f s; CPU s over the GET (median): %s" % (name, med(name, "wall"), cpu))
    harbor_cpu = med("harbor", "registry") + med("harbor", "harbor") + med("harbor", "curl")
    share = harbor_cpu / cores
    proxy_wall = med("dist-proxy", "wall")
    print()
    print(
        "floor 1, the sha256 alone:           %.3f s = %.2fx the proxy's %.3f s"
        % (t_hash, t_hash / proxy_wall, proxy_wall)
    )
    print("floor 2, all CPU of the GET / cores: %.3f s = %.2fx the proxy" % (share, share / proxy_wall))
    print(
        "harbor-cache measured:               %.3f s = %.2fx the proxy"
        % (med("harbor", "wall"), med("harbor", "wall") / proxy_wall)
    )


if __name__ == "__main__":
    main()
