"""Maven benchmark: harbor-cache against nginx ``proxy_cache``, same upstream, same run.

Both caches sit in front of one nginx serving the harness Maven repository
(tests/integration/support.py: MavenUpstream).  Each is warmed by one cold
``mvn -B -C clean install`` of the harness's small project (plus a version
range and a SNAPSHOT dependency); then, alternating between the two:

- warm build: ``mvn -B -C clean install`` with a fresh local repository
  (so every file comes from the cache), ``--runs`` times, median wall time;
- small files: ``wrk`` on a cached POM (``--wrk-seconds``, 16 connections,
  2 threads), requests/s.

Targets: warm build <= 1.2x nginx (issue 6), small-file req/s >= 0.2x nginx (issue 17); each printed OK/MISSED.

    python bench/maven_bench.py                # 3 builds each, 10 s of wrk each
    python bench/maven_bench.py --record       # also write "## Maven" in bench/RESULTS.md
    python bench/maven_bench.py --wrk-only     # no mvn builds: the small file is fetched once, then wrk
    python bench/maven_bench.py --wrk-only --compare /work/main   # A/B: a second harbor-cache from that checkout

``--compare DIR`` runs another harbor-cache (its code from checkout DIR) as a third peer in the same alternating
wrk rounds, so two builds are compared under the same machine load.

harbor-cache writes its access log to a file of its own (``[log] access_file``, in the bench's temp dir), as a
production deployment would; nginx runs with ``access_log off``, so harbor-cache still does more per request.
``--compare-main-log`` runs the compared checkout without ``[log]`` (access lines as twisted.logger events in
its main log, the behaviour before ``access_file`` existed; needed for a checkout older than that key).
``--default-log`` runs this checkout without ``[log]`` either: the default configuration (since issue 30 the
access lines go to ``DATA/logs/access.log``, rotated).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.integration import support  # noqa: E402
from tests.integration.test_maven_it import write_project  # noqa: E402

SMALL_FILE = "org/apache/commons/commons-lang3/3.12.0/commons-lang3-3.12.0.pom"
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
COMPARED = "harbor-cache (--compare)"


class NginxProxyCache:
    """nginx with proxy_cache in front of ``upstream_url`` (the peer we compare against)."""

    def __init__(self, upstream_url: str):
        support.require("nginx")
        self.dir = tempfile.mkdtemp(prefix="harbor-bench-nginx-cache-")
        os.chmod(self.dir, 0o755)
        self.port = support.free_port()
        self.url = "http://%s:%d" % (support.LOOPBACK, self.port)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "cache"):
            os.makedirs(os.path.join(self.dir, "tmp", sub))
        d = self.dir
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(
                "\n".join(
                    [
                        "user root;" if os.geteuid() == 0 else "",
                        "worker_processes 1;",
                        "daemon off;",
                        "pid %s/nginx.pid;" % d,
                        "error_log %s/error.log warn;" % d,
                        "events { worker_connections 1024; }",
                        "http {",
                        "  access_log off;",
                        "  client_body_temp_path %s/tmp/body;" % d,
                        "  proxy_temp_path %s/tmp/proxy;" % d,
                        "  fastcgi_temp_path %s/tmp/fastcgi;" % d,
                        "  uwsgi_temp_path %s/tmp/uwsgi;" % d,
                        "  scgi_temp_path %s/tmp/scgi;" % d,
                        "  proxy_cache_path %s/tmp/cache levels=1:2 keys_zone=maven:10m max_size=2g inactive=1d;" % d,
                        "  sendfile on;",
                        "  keepalive_requests 100000;",
                        "  server {",
                        "    listen %s:%d;" % (support.LOOPBACK, self.port),
                        "    location / {",
                        "      proxy_pass %s;" % upstream_url,
                        "      proxy_http_version 1.1;",
                        '      proxy_set_header Connection "";',
                        "      proxy_cache maven;",
                        "      proxy_cache_valid 200 1d;",
                        "      proxy_cache_valid 404 1m;",
                        "      proxy_cache_lock on;",
                        "      proxy_cache_use_stale error timeout updating;",
                        "    }",
                        "  }",
                        "}",
                        "",
                    ]
                )
            )
        self._daemon = support._Daemon("nginx proxy_cache :%d" % self.port, os.path.join(d, "nginx.out"))
        self._daemon.start(["nginx", "-p", d, "-c", conf])
        self._daemon.wait_ready(self.url + "/" + SMALL_FILE, 20)

    def close(self):
        self._daemon.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class CheckoutHarborServer(support.HarborServer):
    """harbor-cache run from another checkout (``root``): its code, not this one's."""

    def __init__(self, root: str, config_toml: str):
        self.root = os.path.abspath(root)
        super().__init__(config_toml, env={"PYTHONPATH": self.root})

    def start(self):
        self._daemon.start(self.command(), env=self.env, cwd=self.root)
        self._daemon.wait_ready(self.url + "/health", self.timeout)


def access_file_table(path: str) -> str:
    """The ``[log]`` table that sends harbor-cache's access lines to ``path`` (see the module doc)."""
    return '\n[log]\naccess_file = "%s"\n' % path


def build(settings: str, project: str, local_repo: str) -> float:
    shutil.rmtree(local_repo, ignore_errors=True)
    started = time.monotonic()
    cp = support.mvn(settings, local_repo, "-q", "-C", "clean", "install", cwd=project)
    elapsed = time.monotonic() - started
    support.check_ok(cp)
    return elapsed


def wrk(url: str, seconds: int, pid: int | None = None) -> float:
    """req/s of one wrk run; with ``pid``, also that process's CPU time per request (`cpu_per_request`)."""
    support.require("wrk")
    before = _cpu_seconds(pid)
    cp = support.check_ok(
        support.run(["wrk", "-t2", "-c16", "-d%ds" % seconds, "--latency", url], timeout=seconds + 60)
    )
    m = re.search(r"Requests/sec:\s+([0-9.]+)", cp.stdout)
    if not m:
        raise RuntimeError("no Requests/sec in wrk output:\n" + cp.stdout)
    if "Non-2xx" in cp.stdout:
        raise RuntimeError("wrk saw errors:\n" + cp.stdout)
    count = re.search(r"(\d+) requests in", cp.stdout)
    if pid is not None and count and int(count.group(1)):
        cpu_per_request.setdefault(url, []).append((_cpu_seconds(pid) - before) / int(count.group(1)))
    return float(m.group(1))


#: url -> CPU seconds per request of the serving process, per wrk run (for peers whose pid is known)
cpu_per_request: dict[str, list[float]] = {}


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of ``pid`` so far (0 when unknown): a figure the machine's load moves far
    less than req/s, since a busy neighbour takes wall time from a request, not CPU time."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def record(text: str) -> None:
    """Replace (or append) the "## Maven" section of bench/RESULTS.md."""
    existing = ""
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            existing = f.read()
    section = "## Maven\n\n" + text.strip() + "\n"
    pattern = re.compile(r"^## Maven\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(existing):
        updated = pattern.sub(section + "\n", existing).rstrip() + "\n"
    else:
        head = existing.rstrip() + "\n\n" if existing.strip() else "# Benchmark results\n\n"
        updated = head + section
    with open(RESULTS, "w") as f:
        f.write(updated)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--wrk-runs", type=int, default=3, help="wrk runs per peer, alternating; the median counts")
    parser.add_argument("--record", action="store_true", help="write the figures to bench/RESULTS.md")
    parser.add_argument(
        "--wrk-only",
        action="store_true",
        help="skip the mvn builds: fetch the small file once through each cache, then only wrk",
    )
    parser.add_argument(
        "--compare",
        metavar="CHECKOUT",
        help="also run harbor-cache from this checkout (e.g. /work/main) in the same wrk rounds",
    )
    parser.add_argument(
        "--compare-main-log",
        action="store_true",
        help="the compared checkout logs access lines to its main log (no [log] access_file)",
    )
    parser.add_argument(
        "--default-log",
        action="store_true",
        help="this checkout without [log]: the default access log (DATA/logs/access.log, rotated)",
    )
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="harbor-bench-maven-")
    upstream = support.MavenUpstream()
    config = support.maven_config([{"id": "central", "url": upstream.url}])
    harbor = support.HarborServer(
        config if args.default_log else config + access_file_table(os.path.join(work, "access.log"))
    )
    other = None
    if args.compare:
        other = CheckoutHarborServer(
            args.compare,
            config if args.compare_main_log else config + access_file_table(os.path.join(work, "access-compared.log")),
        )
    nginx = NginxProxyCache(upstream.url)
    times: dict[str, list[float]] = {}
    cold: dict[str, float] = {}
    try:
        project = write_project(os.path.join(work, "project"))
        peers = {
            "harbor-cache": (harbor.url + "/artifacts/central/", harbor.url + "/artifacts/central/" + SMALL_FILE),
            "nginx proxy_cache": (nginx.url + "/", nginx.url + "/" + SMALL_FILE),
        }
        if other is not None:
            peers[COMPARED] = (other.url + "/artifacts/central/", other.url + "/artifacts/central/" + SMALL_FILE)
        if args.wrk_only:
            for name, (_, small) in peers.items():
                cp = support.run(["curl", "-fsS", "-o", "/dev/null", small], timeout=60)
                if cp.returncode != 0:
                    server = {"harbor-cache": harbor, COMPARED: other}.get(name)
                    raise RuntimeError(
                        f"{name}: {small} failed: {cp.stderr}"
                        + ("\n" + server.log_text()[-4000:] if server is not None else "")
                    )
        else:
            settings = {
                name: support.write_maven_settings(os.path.join(work, name.replace(" ", "-") + ".xml"), mirror)
                for name, (mirror, _) in peers.items()
            }
            cold = {name: build(settings[name], project, os.path.join(work, "m2")) for name in peers}
            print("cold builds:", {k: round(v, 2) for k, v in cold.items()}, flush=True)
            times = {name: [] for name in peers}
            for i in range(args.runs):
                for name in peers:
                    t = build(settings[name], project, os.path.join(work, "m2"))
                    times[name].append(t)
                    print(f"warm build {i + 1} {name}: {t:.2f}s", flush=True)
        rps_runs: dict[str, list[float]] = {name: [] for name in peers}
        for _name, (_, small) in peers.items():
            wrk(small, 2)  # warm-up
        pids = {"harbor-cache": harbor.pid, COMPARED: other.pid if other is not None else None}
        for i in range(args.wrk_runs):  # alternating, so both see the same machine load
            for name, (_, small) in peers.items():
                rps_runs[name].append(wrk(small, args.wrk_seconds, pids.get(name)))
                print(f"small file {i + 1} {name}: {rps_runs[name][-1]:.0f} req/s", flush=True)
        rps = {name: statistics.median(v) for name, v in rps_runs.items()}
    finally:
        nginx.close()
        harbor.close()
        if other is not None:
            other.close()
        upstream.close()
        shutil.rmtree(work, ignore_errors=True)

    rps_ratio = rps["harbor-cache"] / rps["nginx proxy_cache"]
    loadavg = " ".join(open("/proc/loadavg").read().split()[:3])
    per_run = (
        "Small-file req/s per run: "
        + "; ".join(f"{name}: " + ", ".join(f"{r:.0f}" for r in v) for name, v in rps_runs.items())
        + "."
    )
    verdict = f"small file req/s vs nginx {rps_ratio:5.2f}  target >= 0.2  {'OK' if rps_ratio >= 0.2 else 'MISSED'}"
    if args.wrk_only:
        lines = (
            [
                f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python bench/maven_bench.py "
                f"--wrk-only --wrk-seconds {args.wrk_seconds} --wrk-runs {args.wrk_runs}"
                + (" --compare CHECKOUT" if other is not None else "")
                + (" --compare-main-log" if other is not None and args.compare_main_log else "")
                + (" --default-log" if args.default_log else "")
                + f"` ({os.cpu_count()} CPUs, loopback; harbor-cache writes its access log to a file, "
                "nginx has access_log off).",
                "",
                "| | req/s (median) | ratio to nginx |",
                "|---|---|---|",
            ]
            + [f"| {name} | {r:.0f} | {r / rps['nginx proxy_cache']:.3f}x |" for name, r in rps.items()]
            + [
                "",
                per_run,
            ]
            + [
                f"CPU per request of {name} (us, median; per run): {statistics.median(cpu_per_request[small]) * 1e6:.0f}; "
                + ", ".join(f"{c * 1e6:.0f}" for c in cpu_per_request[small])
                for name, (_, small) in peers.items()
                if small in cpu_per_request
            ]
            + [
                f"loadavg at the end: {loadavg}",
                "",
                verdict,
            ]
        )
        text = "\n".join(lines)
        print()
        print(text)
        ok = rps_ratio >= 0.2
        print("\ntargets met" if ok else "\nTARGETS NOT MET")
        return 0 if ok else 1

    med = {name: statistics.median(v) for name, v in times.items()}
    build_ratio = med["harbor-cache"] / med["nginx proxy_cache"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} by `python bench/maven_bench.py --runs {args.runs} "
        f"--wrk-seconds {args.wrk_seconds}` ({os.cpu_count()} CPUs, loopback; both caches in front of the same "
        "nginx upstream serving the harness repository, in the same run).",
        "",
        "| | harbor-cache | nginx proxy_cache | ratio | target |",
        "|---|---|---|---|---|",
        f"| cold `mvn -C clean install` (s) | {cold['harbor-cache']:.2f} | {cold['nginx proxy_cache']:.2f} | "
        f"{cold['harbor-cache'] / cold['nginx proxy_cache']:.2f}x | - |",
        f"| warm `mvn -C clean install`, fresh local repo, median of {args.runs} (s) | {med['harbor-cache']:.2f} | "
        f"{med['nginx proxy_cache']:.2f} | {build_ratio:.2f}x | <= 1.2x |",
        f"| small file (POM) with wrk -t2 -c16 (req/s) | {rps['harbor-cache']:.0f} | "
        f"{rps['nginx proxy_cache']:.0f} | {rps_ratio:.2f}x | >= 0.2x |",
        "",
        "Warm build times per run: "
        + "; ".join(f"{name}: " + ", ".join(f"{t:.2f}" for t in v) for name, v in times.items())
        + ".",
        per_run,
        f"loadavg at the end: {loadavg}",
        "",
        f"warm build vs nginx      {build_ratio:6.2f}  target <= 1.2  {'OK' if build_ratio <= 1.2 else 'MISSED'}",
        verdict,
    ]
    text = "\n".join(lines)
    print()
    print(text)
    if args.record:
        record(text)
    ok = build_ratio <= 1.2 and rps_ratio >= 0.2
    print("\ntargets met" if ok else "\nTARGETS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
