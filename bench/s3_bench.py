#!/usr/bin/env python3
"""S3 benchmark (issue 26, point 9): harbor-cache on ``backend = "s3"`` against distribution's ``s3`` driver.

All on 127.0.0.1, in one run, with processes of its own:

* one S3 API server (``python -m moto.server``, no signature checks) that
  every S3-backed process uses, each in its own bucket;
* ``upstream``: distribution on the filesystem holding ``library/test:large``
  (one ``--large-mib`` layer);
* ``dist-s3``: distribution with ``storage: s3`` (``regionendpoint`` on moto;
  in 2.8 that also forces path-style requests; ``redirect: disable`` so the
  blob bytes go through the registry like harbor-cache's) as a plain
  registry: the large image is pushed into it once (its warm GET), fresh
  images are pushed to it (push);
* ``dist-s3-proxy``: distribution with ``storage: s3`` and ``proxy:
  remoteurl`` to the upstream; per cold run restarted on a new
  ``rootdirectory`` (an empty cache, nothing in memory);
* ``harbor``: harbor-cache with ``[storage] backend = "s3"`` proxying the
  same upstream (``library/*``; other names are hosted); per cold run a new
  process on a new data directory and a new ``prefix`` (an empty cache).

Figures (median of ``--runs``; MB = 1e6 bytes): cold GET time of the large
blob (harbor vs dist-s3-proxy; the upstream's own GET for scale) and the time
until the blob is an object in the cache's bucket (both commit after the
client's last byte can have gone out: their CPU figures cover it), warm GET
throughput from harbor's local tier and from its bucket (tier wiped before
each GET) vs dist-s3's S3-backed GET, and the time of ``skopeo copy`` of a
fresh ``--push-mib`` image (random layer, new per run) to dist-s3 and to
harbor (alternating order).  For each figure the CPU seconds (utime+stime)
the serving processes spent, moto's included.  Then the ratios against the
issue's targets.  Usage::

    python3 bench/s3_bench.py [--large-mib 200] [--push-mib 100] [--runs 3] [--markdown]

Needs docker-registry (2.8, with the s3-aws driver), skopeo, curl and moto[server].
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, os.path.join(REPO_ROOT, "bench"))

from oci_bench import curl_get  # noqa: E402
from push_bench import cpu_seconds, fresh_image, push  # noqa: E402

from tests import s3_support  # noqa: E402
from tests.integration import support  # noqa: E402

MB = 1e6
MIB = 1 << 20
KEYS = ("test", "test")
BUCKETS = ("dist-plain", "dist-proxy", "harbor")


class Moto:
    """``python -m moto.server`` on a free loopback port, no signature checks (moto spends no CPU on them)."""

    def __init__(self, log_dir: str) -> None:
        self.port = support.free_port()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        self.log = open(os.path.join(log_dir, "moto.log"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("moto did not start") from None
                time.sleep(0.1)
        self.s3 = s3_support.S3Server(self.endpoint, self.port, *KEYS).botocore_client()
        for bucket in BUCKETS:
            self.s3.create_bucket(Bucket=bucket)

    @property
    def pid(self) -> int:
        return self.process.pid

    def empty(self, bucket: str, prefix: str) -> None:
        """Delete what a run left under ``prefix`` (moto holds every object in memory)."""
        while True:
            listing = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
            if not listing:
                return
            self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in listing]})

    def wait_for(self, bucket: str, key: str, timeout: float = 300) -> None:
        """Until ``key`` is an object (a cache's commit to the bucket may end after its client's last byte)."""
        deadline = time.monotonic() + timeout
        while self.s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("%s/%s never appeared" % (bucket, key))
            time.sleep(0.02)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.log.close()


class DistS3:
    """``docker-registry serve`` with ``storage: s3`` on moto; ``remote``: a pull-through proxy of it."""

    def __init__(self, moto: Moto, bucket: str, remote: str | None = None) -> None:
        self.moto = moto
        self.bucket = bucket
        self.remote = remote
        self.dir = tempfile.mkdtemp(prefix="bench-dist-s3-")
        self.port = support.free_port()
        self.hostport = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.hostport
        self.config = os.path.join(self.dir, "config.yml")
        self.daemon = support._Daemon("dist-s3 :%d" % self.port, os.path.join(self.dir, "registry.log"))
        support._CLOSE_AT_EXIT.append(self.close)

    def start(self, root: str) -> None:
        """(Re)start on ``rootdirectory: /<root>``: a new root is an empty registry."""
        self.daemon.stop()
        self.root = root
        s3 = (
            "  s3: {accesskey: %s, secretkey: %s, region: us-east-1, regionendpoint: '%s', bucket: %s, "
            "secure: false, v4auth: true, rootdirectory: /%s}"
            % (KEYS[0], KEYS[1], self.moto.endpoint, self.bucket, root)
        )
        lines = [
            "version: 0.1",
            "log: {level: warn, accesslog: {disabled: true}}",
            "storage:",
            s3,
            "  delete: {enabled: true}",
            "  cache: {blobdescriptor: inmemory}",
            "  redirect: {disable: true}",
            "http:",
            "  addr: %s" % self.hostport,
            "  secret: bench-not-secret",
            "health: {storagedriver: {enabled: false}}",
        ]
        if self.remote:
            lines.append("proxy: {remoteurl: '%s'}" % self.remote)
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.daemon.start(["docker-registry", "serve", self.config], env=env)
        self.daemon.wait_ready(self.url + "/v2/", 30)

    @property
    def pid(self) -> int:
        return self.daemon.pid

    def close(self) -> None:
        self.daemon.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def ready(srv: support.HarborServer) -> None:
    """Until /readyz answers 200: the start-up work (the bucket's first probe, the tier's scan) is done,
    as distribution's is when it answers /v2/."""
    support.wait_http(srv.url + "/readyz", timeout=60)


def harbor_storage(moto: Moto, prefix: str) -> str:
    return "\n".join(
        [
            "[storage]",
            'backend = "s3"',
            'bucket = "harbor"',
            'endpoint = "%s"' % moto.endpoint,
            'addressing = "path"',
            'prefix = "%s"' % prefix,
            'access_key_id = "%s"' % KEYS[0],
            'secret_access_key = "%s"' % KEYS[1],
            "",
        ]
    )


class Cpu:
    """CPU seconds each named process spends between `start` and `stop` (a dict of deltas)."""

    def __init__(self, **pids: int) -> None:
        self.pids = pids

    def __enter__(self) -> dict[str, float]:
        self.before = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self.out: dict[str, float] = {}
        return self.out

    def __exit__(self, *exc: object) -> None:
        for k, p in self.pids.items():
            self.out[k] = cpu_seconds(p) - self.before[k]


def med_cpu(samples: list[dict[str, float]]) -> str:
    keys = samples[0].keys()
    return ", ".join("%s %.2f" % (k, statistics.median(s[k] for s in samples)) for k in keys)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large-mib", type=int, default=200)
    ap.add_argument("--push-mib", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    for tool in ("docker-registry", "skopeo", "curl"):
        if shutil.which(tool) is None:
            sys.exit("missing tool: %s" % tool)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    work = tempfile.mkdtemp(prefix="bench-s3-")
    layout, images = support.oci_layout(large=args.large_mib)
    large = images["images"]["large"]
    layer = max(large["layers"], key=lambda l: l["size"])
    blob_path = "/v2/library/test/blobs/" + layer["digest"]
    size = layer["size"]
    hexpart = layer["digest"].split(":", 1)[1]
    moto = Moto(work)
    upstream = support.Registry()
    support.push_layout(layout, upstream.hostport, "library/test", names=["large"])
    plain = DistS3(moto, "dist-plain")
    plain.start("plain")
    support.push_layout(layout, plain.hostport, "library/test", names=["large"])
    proxy = DistS3(moto, "dist-proxy", remote=upstream.url)
    config = support.oci_config(upstream.url, server={"public_url": "http://127.0.0.1:@PORT@"}, routes=["library/*"])
    say(
        "blob %s, %d bytes (%.1f MiB); push: fresh %d MiB image; %d runs per figure; MB = 1e6 bytes; busy machine"
        % (layer["digest"], size, size / MIB, args.push_mib, args.runs)
    )
    say(
        "nproc %d, python %s, loadavg at start %s; moto %s (one server for all, one bucket each)"
        % (os.cpu_count(), sys.version.split()[0], " ".join(open("/proc/loadavg").read().split()[:3]), _moto_version())
    )
    say()
    results: dict[str, list[float]] = {}
    cpu: dict[str, list[dict[str, float]]] = {}
    srv = None
    try:
        # -- cold: a fresh cache each run (new prefix / rootdirectory, new process) ------------------
        for run in range(args.runs):
            results.setdefault("upstream", []).append(curl_get(upstream.url + blob_path)[0])
            order = ["dist-s3-proxy", "harbor"] if run % 2 == 0 else ["harbor", "dist-s3-proxy"]
            for name in order:
                if name == "dist-s3-proxy":
                    proxy.start("cold%d" % run)
                    key = "cold%d/docker/registry/v2/blobs/sha256/%s/%s/data" % (run, hexpart[:2], hexpart)
                    with Cpu(**{"dist-s3-proxy": proxy.pid, "moto": moto.pid}) as used:
                        t0 = time.monotonic()
                        results.setdefault("cold dist-s3-proxy", []).append(curl_get(proxy.url + blob_path)[0])
                        moto.wait_for("dist-proxy", key)
                        results.setdefault("cold dist-s3-proxy, in bucket", []).append(time.monotonic() - t0)
                    proxy.daemon.stop()
                    moto.empty("dist-proxy", "cold%d/" % run)
                else:
                    if srv is not None:
                        srv.close()
                    srv = support.HarborServer(config + "\n" + harbor_storage(moto, "cold%d/" % run))
                    ready(srv)
                    key = "cold%d/blobs/sha256/%s/%s" % (run, hexpart[:2], hexpart)
                    with Cpu(harbor=srv.pid, moto=moto.pid) as used:
                        t0 = time.monotonic()
                        results.setdefault("cold harbor", []).append(curl_get(srv.url + blob_path)[0])
                        moto.wait_for("harbor", key)
                        results.setdefault("cold harbor, in bucket", []).append(time.monotonic() - t0)
                cpu.setdefault("cold " + name, []).append(used)
        # -- warm: harbor's local tier, harbor's bucket (tier wiped), dist-s3's S3-backed GET ----------
        assert srv is not None
        blobs = os.path.join(srv.data_dir, "blobs")
        curl_get(plain.url + blob_path)
        curl_get(srv.url + blob_path)
        for _ in range(args.runs):
            for name, url, wipe in (
                ("warm harbor local tier", srv.url, False),
                ("warm dist-s3", plain.url, False),
                ("warm harbor bucket read", srv.url, True),
            ):
                if wipe:
                    shutil.rmtree(blobs)
                    os.makedirs(blobs)
                pids = {"harbor": srv.pid} if url == srv.url else {"dist-s3": plain.pid}
                pids["moto"] = moto.pid
                with Cpu(**pids) as used:
                    t, speed, got = curl_get(url + blob_path)
                assert got == size, (name, got)
                results.setdefault(name, []).append(speed)
                cpu.setdefault(name, []).append(used)
        srv.close()
        srv = None
        # -- push: a fresh image each run to dist-s3 and to harbor (hosted), alternating ------------------
        srv = support.HarborServer(config + "\n" + harbor_storage(moto, "push/"))
        ready(srv)
        creds = "admin:" + srv.admin_password
        image = os.path.join(work, "push-layout")
        for run in range(args.runs):
            fresh_image(image, args.push_mib)
            order = [("push dist-s3", plain, None), ("push harbor", srv, creds)]
            if run % 2:
                order.reverse()
            for name, target, c in order:
                pid = target.pid
                with Cpu(**{"harbor" if target is srv else "dist-s3": pid, "moto": moto.pid}) as used:
                    results.setdefault(name, []).append(push(image, target.hostport, "bench/push%d:1" % run, c))
                cpu.setdefault(name, []).append(used)
    finally:
        if srv is not None:
            srv.close()
        proxy.close()
        plain.close()
        upstream.close()
        moto.close()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    for name, values in results.items():
        if name.startswith("warm"):
            say(
                "%-32s median %7.1f MB/s  runs: %s;  cpu s (median): %s"
                % (name, med[name] / MB, ", ".join("%.0f" % (v / MB) for v in values), med_cpu(cpu[name]))
            )
        else:
            extra = ";  cpu s (median): %s" % med_cpu(cpu[name]) if name in cpu else ""
            say("%-32s median %7.3f s     runs: %s%s" % (name, med[name], ", ".join("%.2f" % v for v in values), extra))
    say("  cold/warm: curl -sf -o /dev/null -w '%%{time_total} %%{speed_download}' <base>%s" % blob_path)
    say(
        "  push: skopeo copy -q --dest-tls-verify=false --preserve-digests oci:<fresh layout>:x "
        "docker://<host>/bench/push<N>:1"
    )
    say()
    checks = [
        ("warm local tier vs dist-s3 GET (throughput)", med["warm harbor local tier"] / med["warm dist-s3"], ">=", 1.0),
        ("cold vs dist-s3-proxy (time)", med["cold harbor"] / med["cold dist-s3-proxy"], "<=", 1.0),
        ("push vs dist-s3 (time)", med["push harbor"] / med["push dist-s3"], "<=", 1.2),
    ]
    for name, value, op, target in checks:
        ok = value >= target if op == ">=" else value <= target
        say("%-44s %6.2f  target %s %g  %s" % (name, value, op, target, "OK" if ok else "MISSED"))
    say(
        "(no target) warm bucket read vs dist-s3 GET (throughput): %.2f"
        % (med["warm harbor bucket read"] / med["warm dist-s3"])
    )
    say("loadavg at the end %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    if args.markdown:
        print("\n----- markdown -----\n```\n" + "\n".join(lines) + "\n```")
    return 0


def _moto_version() -> str:
    try:
        import moto

        return str(moto.__version__)
    except Exception:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
