#!/usr/bin/env python3
"""OCI benchmark: harbor-cache against distribution direct and distribution in proxy mode.

One run measures, all on 127.0.0.1 with processes of its own:

* warm blob throughput of the large layer (curl ``%{speed_download}``, median of ``--runs``);
* cold blob time of the large layer (a fresh cache each run; for the
  distribution proxy its storage is wiped while it is stopped);
* warm manifest-by-tag requests/s (``wrk -t2 -c16 -d5s`` with the OCI Accept header);
* RSS growth of the harbor-cache process while 20 slow readers
  (``curl --limit-rate``) and one fast reader share a cold blob;
* ``skopeo copy`` of library/test:large: direct, harbor cold, harbor warm.

Then the ratios against the issue's targets. Usage::

    python3 bench/oci_bench.py [--large-mib 200] [--runs 5] [--markdown]
    python3 bench/oci_bench.py --only cold,skopeo --baseline /tmp/main-export   # A/B of the cold figures

``--only`` picks sections (warm, manifest, cold, rss, skopeo; the verdict
shows the targets whose figures were taken). ``--baseline DIR`` also runs
harbor-cache from another checkout (e.g. ``git archive main | tar -x -C DIR``)
as "harbor-base", alternating with this one run by run in the cold and
skopeo-cold figures, so a change can be compared with main on a busy machine.

Needs docker-registry, skopeo, curl and wrk (Debian packages). The image
layout is generated once per machine (see tests/integration/support.py).
"""

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from tests.integration import oci_support as oci  # noqa: E402
from tests.integration import support  # noqa: E402

OCI_ACCEPT = "Accept: " + oci.OCI_MANIFEST
MB = 1e6
MIB = 1 << 20


class DistributionProxy:
    """``docker-registry serve`` with ``proxy: {remoteurl}`` (it panics if the remote is down at start)."""

    def __init__(self, remote_url):
        self.dir = tempfile.mkdtemp(prefix="bench-dist-proxy-")
        self.storage = os.path.join(self.dir, "storage")
        self.port = support.free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.config = os.path.join(self.dir, "proxy.yml")
        with open(self.config, "w") as f:
            f.write(
                "\n".join(
                    [
                        "version: 0.1",
                        "log: {level: warn, accesslog: {disabled: true}}",
                        "storage:",
                        "  filesystem: {rootdirectory: %s}" % self.storage,
                        "  delete: {enabled: true}",
                        "  cache: {blobdescriptor: inmemory}",
                        "http:",
                        "  addr: 127.0.0.1:%d" % self.port,
                        "  secret: bench-not-secret",
                        "health: {storagedriver: {enabled: false}}",
                        "proxy: {remoteurl: '%s'}" % remote_url,
                        "",
                    ]
                )
            )
        self.daemon = support._Daemon("dist-proxy :%d" % self.port, os.path.join(self.dir, "proxy.log"))
        support._CLOSE_AT_EXIT.append(self.close)
        self.cmd = ["docker-registry", "serve", self.config]

    def cold_start(self):
        """Stop, wipe storage, start: an empty cache."""
        self.daemon.stop()
        shutil.rmtree(self.storage, ignore_errors=True)
        os.makedirs(self.storage)
        self.daemon.start(self.cmd)
        self.daemon.wait_ready(self.url + "/v2/", 30)

    def close(self):
        self.daemon.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


SECTIONS = ("warm", "manifest", "cold", "rss", "skopeo")


def tree_harbor(tree, config):
    """A HarborServer running the code of checkout ``tree`` instead of this one."""

    class _TreeServer(support.HarborServer):
        def start(self):
            self._daemon.start(self.command(), env=self.env, cwd=tree)
            self._daemon.wait_ready(self.url + "/health", self.timeout)

    return _TreeServer(config, env={"PYTHONPATH": tree})


def curl_get(url, limit_rate=None):
    """(seconds, bytes/s, bytes) of one curl GET to /dev/null."""
    cmd = ["curl", "-sf", "-o", "/dev/null", "-w", "%{time_total} %{speed_download} %{size_download}"]
    if limit_rate:
        cmd += ["--limit-rate", limit_rate]
    cp = support.check_ok(support.run(cmd + [url], timeout=600))
    t, speed, size = cp.stdout.split()
    return float(t), float(speed), int(size)


def wrk(url):
    cmd = ["wrk", "-t2", "-c16", "-d5s", "-H", OCI_ACCEPT, url]
    cp = support.check_ok(support.run(cmd, timeout=60))
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", cp.stdout).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", cp.stdout)
    return rps, int(bad.group(1)) if bad else 0, " ".join(cmd)


def cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` so far (/proc, in clock ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for %d" % pid)


SKOPEO_CPU = {}  # host:port -> skopeo's CPU seconds (user+sys) per copy, in order


def skopeo_copy(hostport, out):
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    support.check_ok(
        support.skopeo(
            "copy",
            "-q",
            "--src-tls-verify=false",
            "docker://%s/library/test:large" % hostport,
            "oci:%s:x" % out,
            timeout=900,
        )
    )
    elapsed = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    SKOPEO_CPU.setdefault(hostport, []).append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return elapsed


def fmt_runs(values, unit="s"):
    return ", ".join("%.3f" % v for v in values) + " " + unit


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large-mib", type=int, default=200, help="size of the large layer (default 200)")
    ap.add_argument("--runs", type=int, default=5, help="runs per throughput/cold figure (default 5)")
    ap.add_argument("--skopeo-runs", type=int, default=3)
    ap.add_argument(
        "--skopeo-dest",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where skopeo writes its copies (default /dev/shm, a tmpfs: the client's own 200 MiB of disk writes "
        "per copy are not what is measured, and they made every peer's runs drift)",
    )
    ap.add_argument("--slow-readers", type=int, default=20)
    ap.add_argument("--slow-rate", default="2M", help="curl --limit-rate of each slow reader (default 2M)")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown section for bench/RESULTS.md")
    ap.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help="comma-separated sections to run (default: all of %s)" % ",".join(SECTIONS),
    )
    ap.add_argument(
        "--baseline",
        metavar="DIR",
        default=None,
        help="another checkout whose harbor-cache runs as harbor-base in the cold figures (A/B)",
    )
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    if not only <= set(SECTIONS):
        ap.error("--only takes %s" % ",".join(SECTIONS))
    baseline = os.path.abspath(args.baseline) if args.baseline else None
    for tool in ("docker-registry", "skopeo", "curl", "wrk"):
        if shutil.which(tool) is None:
            sys.exit("missing tool: %s" % tool)

    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    layout, images = support.oci_layout(large=args.large_mib)
    large = images["images"]["large"]
    layer = max(large["layers"], key=lambda l: l["size"])
    blob_path = "/v2/library/test/blobs/" + layer["digest"]
    size = layer["size"]

    reg = support.Registry()
    support.push_layout(layout, reg.hostport, "library/test", names=["single", "large"])
    proxy = DistributionProxy(reg.url)
    work = tempfile.mkdtemp(prefix="bench-oci-")

    def harbor(tree=None):
        if tree is not None:
            return tree_harbor(tree, oci.harbor_config(reg.url))
        return support.HarborServer(oci.harbor_config(reg.url))

    # (name, checkout) of the harbor-cache builds in the cold figures, in the order they run
    builds = [("harbor", None)] + ([("harbor-base", baseline)] if baseline else [])

    say(
        "blob: %s, %d bytes (%.1f MiB); %d runs per figure; MB = 1e6 bytes"
        % (layer["digest"], size, size / MIB, args.runs)
    )
    say(
        "nproc %d, python %s, loadavg at start %s"
        % (os.cpu_count(), sys.version.split()[0], " ".join(open("/proc/loadavg").read().split()[:3]))
    )
    say()

    warm, rps, cold_med, growth, sk = {}, {}, {}, None, {}
    # -- warm blob throughput ----------------------------------------------------
    srv = harbor() if only & {"warm", "manifest"} else None
    if "warm" in only:
        curl_get(srv.url + blob_path)  # fills the cache
        proxy.cold_start()
        curl_get(proxy.url + blob_path)
    for name, base in (("direct", reg.url), ("dist-proxy", proxy.url), ("harbor", srv.url)) if "warm" in only else ():
        curl_get(base + blob_path)  # page cache
        speeds = [curl_get(base + blob_path)[1] for _ in range(args.runs)]
        warm[name] = statistics.median(speeds)
        say(
            "warm blob   %-10s median %7.1f MB/s  runs: %s"
            % (name, warm[name] / MB, ", ".join("%.0f" % (s / MB) for s in speeds))
        )
    if "warm" in only:
        say("  cmd: curl -sf -o /dev/null -w '%%{speed_download}' %s%s" % ("<base>", blob_path))

    # -- warm manifest req/s -----------------------------------------------------
    manifest_path = "/v2/library/test/manifests/1"
    if "manifest" in only and "warm" not in only:
        proxy.cold_start()
    for name, base in (
        (("direct", reg.url), ("dist-proxy", proxy.url), ("harbor", srv.url)) if "manifest" in only else ()
    ):
        status, _, _ = support.http("GET", base + manifest_path, {"Accept": oci.OCI_MANIFEST})
        assert status == 200, (name, status)
        rps[name], bad, cmd = wrk(base + manifest_path)
        say("manifest    %-10s %9.0f req/s  (non-2xx: %d)" % (name, rps[name], bad))
    if "manifest" in only:
        say("  cmd: wrk -t2 -c16 -d5s -H '%s' <base>%s" % (OCI_ACCEPT, manifest_path))
    if srv is not None:
        srv.close()

    # -- cold blob time --------------------------------------------------------------
    if "cold" in only:
        cold = {"direct": [], "dist-proxy": []}
        cold.update({name: [] for name, _ in builds})
        # the server's CPU seconds over each cold GET (the proxy's background store of its second fetch
        # counts as far as it ran by the end of the client's GET)
        cold_cpu = {name: [] for name in cold if name != "direct"}

        def timed_get(name, url, pid):
            before = cpu_seconds(pid)
            cold[name].append(curl_get(url)[0])
            cold_cpu[name].append(cpu_seconds(pid) - before)

        for run in range(args.runs):
            cold["direct"].append(curl_get(reg.url + blob_path)[0])
            proxy.cold_start()
            timed_get("dist-proxy", proxy.url + blob_path, proxy.daemon.pid)
            for name, tree in builds if run % 2 == 0 else builds[::-1]:
                s = harbor(tree)
                try:
                    timed_get(name, s.url + blob_path, s.pid)
                finally:
                    s.close()
        cold_med = {k: statistics.median(v) for k, v in cold.items()}
        for name, values in cold.items():
            say("cold blob   %-11s median %.3f s  runs: %s" % (name, cold_med[name], fmt_runs(values)))
        say(
            "  server CPU per cold GiB (median, over the client's GET): "
            + ", ".join("%s %.2f s" % (n, statistics.median(v) * (1 << 30) / size) for n, v in cold_cpu.items())
        )
        say(
            "  cold = fresh harbor-cache data dir per run / dist-proxy stopped, storage wiped, restarted; "
            "direct = same GET"
        )
        if baseline:
            say("  harbor-base = the checkout in %s; harbor and harbor-base alternate which goes first" % baseline)

    # -- RSS with slow readers ---------------------------------------------------
    if "rss" in only:
        s = harbor()
        slow = []
        try:
            base_rss = vm_rss(s.pid)
            peak = base_rss
            for _ in range(args.slow_readers):
                slow.append(
                    subprocess.Popen(
                        ["curl", "-s", "-o", "/dev/null", "--limit-rate", args.slow_rate, s.url + blob_path],
                        stdin=subprocess.DEVNULL,
                    )
                )
            fast = subprocess.Popen(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", s.url + blob_path],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            samples = 0
            end = None
            while True:
                peak = max(peak, vm_rss(s.pid))
                samples += 1
                if end is None and fast.poll() is not None:
                    end = time.monotonic() + 5  # keep sampling while the slow readers go on
                if end is not None and time.monotonic() >= end:
                    break
                time.sleep(0.05)
            fast_time, fast_size = fast.stdout.read().split()
            fast_time = float(fast_time)
            assert int(fast_size) == size, "fast reader got %s of %d bytes" % (fast_size, size)
            alive = sum(1 for p in slow if p.poll() is None)
            final_rss = vm_rss(s.pid)
        finally:
            for p in slow:
                if p.poll() is None:
                    p.terminate()
            for p in slow:
                p.wait(10)
            s.close()
        growth = peak - base_rss
        say(
            "rss         harbor     base %.1f MiB, peak %.1f MiB, growth %.1f MiB (%d samples); fast reader %.2f s; "
            "%d of %d slow readers (--limit-rate %s) still reading at the end; rss then %.1f MiB"
            % (
                base_rss / MIB,
                peak / MIB,
                growth / MIB,
                samples,
                fast_time,
                alive,
                args.slow_readers,
                args.slow_rate,
                final_rss / MIB,
            )
        )

    # -- skopeo copy -------------------------------------------------------------
    if "skopeo" in only:
        out = tempfile.mkdtemp(prefix="bench-oci-skopeo-", dir=args.skopeo_dest)
        sk, sk_cpu = {"direct": []}, {"direct": []}
        sk.update({name + "-cold": [] for name, _ in builds})
        sk["harbor-warm"] = []
        warm_srv = None
        for run in range(args.skopeo_runs):
            sk["direct"].append(skopeo_copy(reg.hostport, out))
            sk_cpu["direct"].append(SKOPEO_CPU[reg.hostport][-1])
            for name, tree in builds if run % 2 == 0 else builds[::-1]:
                s = harbor(tree)
                try:
                    sk[name + "-cold"].append(skopeo_copy(s.hostport, out))
                    sk_cpu[name + "-cold"] = sk_cpu.get(name + "-cold", []) + [SKOPEO_CPU[s.hostport][-1]]
                finally:
                    if warm_srv is None and tree is None:
                        warm_srv = s
                    else:
                        s.close()
        for _ in range(args.skopeo_runs):
            sk["harbor-warm"].append(skopeo_copy(warm_srv.hostport, out))
        sk_cpu["harbor-warm"] = SKOPEO_CPU[warm_srv.hostport][-args.skopeo_runs :]
        warm_srv.close()
        shutil.rmtree(out, ignore_errors=True)
        total = large["bytes_total"]
        for name, values in sk.items():
            say(
                "skopeo copy %-16s median %.2f s (%.0f MB/s)  runs: %s; skopeo cpu median %.2f s"
                % (
                    name,
                    statistics.median(values),
                    total / statistics.median(values) / MB,
                    fmt_runs(values),
                    statistics.median(sk_cpu[name]),
                )
            )
        say(
            "  cmd: skopeo copy -q --src-tls-verify=false docker://<host>/library/test:large oci:<dir>:x  (%d bytes; "
            "<dir> under %s)" % (total, args.skopeo_dest or tempfile.gettempdir())
        )

    # -- verdict -----------------------------------------------------------------
    say()
    checks = []
    if "warm" in only:
        checks.append(("warm throughput vs direct", warm["harbor"] / warm["direct"], ">=", 0.8))
    if "cold" in only:
        checks.append(("cold time vs direct", cold_med["harbor"] / cold_med["direct"], "<=", 1.15))
    if "manifest" in only:
        checks.append(("manifest req/s vs dist-proxy", rps["harbor"] / rps["dist-proxy"], ">=", 5.0))
    if "rss" in only:
        checks.append(("rss growth MiB", growth / MIB, "<", 100.0))
    # issue 17
    if "cold" in only:
        checks.append(("cold time vs dist-proxy cold", cold_med["harbor"] / cold_med["dist-proxy"], "<=", 1.0))
    if "skopeo" in only:
        checks.append(
            ("skopeo cold vs direct", statistics.median(sk["harbor-cold"]) / statistics.median(sk["direct"]), "<=", 1.1)
        )
    if "manifest" in only:
        checks.append(("manifest req/s vs direct", rps["harbor"] / rps["direct"], ">=", 2.0))
    if baseline and "cold" in only:
        checks.append(("base: cold vs dist-proxy cold", cold_med["harbor-base"] / cold_med["dist-proxy"], "<=", 1.0))
    if baseline and "skopeo" in only:
        checks.append(
            (
                "base: skopeo cold vs direct",
                statistics.median(sk["harbor-base-cold"]) / statistics.median(sk["direct"]),
                "<=",
                1.1,
            )
        )
    for name, value, op, target in checks:
        ok = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
        say("%-30s %8.2f  target %s %g  %s" % (name, value, op, target, "OK" if ok else "MISSED"))
    if "cold" in only and "warm" in only:
        say(
            "(cold vs dist-proxy cold: %.2f; warm vs dist-proxy warm: %.2f)"
            % (cold_med["harbor"] / cold_med["dist-proxy"], warm["harbor"] / warm["dist-proxy"])
        )
    say("loadavg at the end %s" % " ".join(open("/proc/loadavg").read().split()[:3]))

    proxy.close()
    reg.close()
    shutil.rmtree(work, ignore_errors=True)
    if args.markdown:
        print("\n----- markdown -----")
        print("```")
        print("\n".join(lines))
        print("```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
