#!/usr/bin/env python3
"""Push benchmark: ``skopeo copy`` of a fresh 100 MiB image to harbor-cache and to distribution direct.

Every run generates a new image (random layer bytes, so neither registry can
skip the blob as already present) and pushes it to both registries, in
alternating order, in the same run; the figure is the ratio of the medians.
harbor-cache is a hosted registry (admin credentials, ``--dest-creds``);
distribution runs without auth.  Usage::

    python3 bench/push_bench.py [--mib 100] [--runs 5] [--markdown]

Needs docker-registry and skopeo.  Prints OK/MISSED against the issue's target
(harbor-cache push time <= 1.2x distribution direct).
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from tests.integration import support  # noqa: E402

MIB = 1 << 20
TARGET = 1.2


def _blob(layout, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def fresh_image(layout: str, mib: int) -> int:
    """Write an OCI layout holding one image with a ``mib`` MiB random layer; returns its total bytes."""
    shutil.rmtree(layout, ignore_errors=True)
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    with open("/dev/urandom", "rb") as r:
        layer = r.read(mib * MIB)
    layer_digest, layer_size = _blob(layout, layer)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}
    ).encode()
    config_digest, config_size = _blob(layout, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}
            ],
        }
    ).encode()
    manifest_digest, manifest_size = _blob(layout, manifest)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": manifest_digest,
                        "size": manifest_size,
                        "annotations": {"org.opencontainers.image.ref.name": "x"},
                    }
                ],
            },
            f,
        )
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return layer_size + config_size + manifest_size


def push(layout: str, hostport: str, target: str, creds: str | None) -> float:
    args = ["copy", "-q", "--dest-tls-verify=false", "--preserve-digests"]
    if creds:
        args += ["--dest-creds", creds]
    t0 = time.monotonic()
    support.check_ok(support.skopeo(*args, "oci:%s:x" % layout, "docker://%s/%s" % (hostport, target), timeout=900))
    return time.monotonic() - t0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children), in seconds: CPU spent whatever the machine's load."""
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    for tool in ("docker-registry", "skopeo"):
        if shutil.which(tool) is None:
            sys.exit("missing tool: %s" % tool)
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    work = tempfile.mkdtemp(prefix="bench-push-")
    layout = os.path.join(work, "layout")
    reg = support.Registry()
    harbor = support.HarborServer(support.oci_config("http://127.0.0.1:9", routes=["proxied/*"]))
    creds = "admin:" + harbor.admin_password
    times = {"direct": [], "harbor": []}
    harbor_cpu = []
    try:
        say(
            "push: skopeo copy -q --dest-tls-verify=false --preserve-digests oci:<fresh layout>:x "
            "docker://<host>/bench/push<N>:1  (%d MiB random layer, new each run); nproc %d, loadavg %s"
            % (args.mib, os.cpu_count(), " ".join(open("/proc/loadavg").read().split()[:3]))
        )
        for i in range(args.runs):
            total = fresh_image(layout, args.mib)
            order = [("direct", reg.hostport, None), ("harbor", harbor.hostport, creds)]
            if i % 2:
                order.reverse()
            for name, hostport, c in order:
                before = cpu_seconds(harbor.pid) if name == "harbor" else 0.0
                times[name].append(push(layout, hostport, "bench/push%d:1" % i, c))
                if name == "harbor":
                    harbor_cpu.append(cpu_seconds(harbor.pid) - before)
        med = {k: statistics.median(v) for k, v in times.items()}
        for name, values in times.items():
            say(
                "push %-7s median %.2f s (%.0f MB/s)  runs: %s"
                % (name, med[name], total / med[name] / 1e6, ", ".join("%.2f" % v for v in values))
            )
        ratio = med["harbor"] / med["direct"]
        per_run = [h / d for h, d in zip(times["harbor"], times["direct"], strict=False)]
        say("per-run ratios: %s" % ", ".join("%.2f" % r for r in per_run))
        say(
            "harbor-cache CPU per push (utime+stime, load-independent): median %.2f s  runs: %s"
            % (statistics.median(harbor_cpu), ", ".join("%.2f" % c for c in harbor_cpu))
        )
        say(
            "%-30s %8.2f  target <= %g  %s"
            % ("push time vs direct", ratio, TARGET, "OK" if ratio <= TARGET else "MISSED")
        )
    finally:
        harbor.close()
        reg.close()
        shutil.rmtree(work, ignore_errors=True)
    if args.markdown:
        print("\n----- markdown -----\n```\n" + "\n".join(lines) + "\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
