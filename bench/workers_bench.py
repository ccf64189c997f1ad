"""``[server] workers``: warm small-file hits with 2 workers against 1, same machine, same run (issue 30).

Two harbor-cache servers in front of one nginx serving the harness Maven
repository (tests/integration/support.py: MavenUpstream), each with the
default configuration but for the upstream and ``[server] workers`` (1 and
N); the small POM is fetched once through each, then ``wrk -t2 -c16`` runs
alternate between them (``--runs`` each, ``--seconds`` long), so both see the
same machine load.  wrk shares the cores with the server: on a 2-core machine
two workers cannot double the figure.  Target: N workers >= 1.3x one.

    python bench/workers_bench.py                 # workers = 2 against 1, 3 runs of 10 s each
    python bench/workers_bench.py --workers 4 --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.maven_bench import SMALL_FILE, _cpu_seconds, wrk  # noqa: E402
from tests.integration import support  # noqa: E402

TARGET = 1.3


def wait_for_workers(server: support.HarborServer, count: int, timeout: float = 60) -> None:
    """Until the parent has logged "worker i ready" for every worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.log_text().count('"log_format": "worker {index} ready"') >= count:
            return
        time.sleep(0.2)
    raise RuntimeError("workers not ready:\n" + server.log_text()[-3000:])


def tree_cpu(pid: int) -> float:
    """CPU seconds so far of ``pid`` and its children (the parent and its workers)."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        children = [int(c) for c in f.read().split()]
    return _cpu_seconds(pid) + sum(_cpu_seconds(c) for c in children)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="wrk runs per server, alternating; the median counts")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()

    upstream = support.MavenUpstream()
    repos = [{"id": "central", "url": upstream.url}]
    one = support.HarborServer(support.maven_config(repos))
    many = support.HarborServer(support.maven_config(repos, server={"workers": args.workers}))
    names = {"workers = 1": one, "workers = %d" % args.workers: many}
    runs: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}  # server CPU us per request, per run
    try:
        wait_for_workers(many, args.workers)
        for server in names.values():
            url = server.url + "/artifacts/central/" + SMALL_FILE
            support.check_ok(support.run(["curl", "-fsS", "-o", "/dev/null", url], timeout=60))
            wrk(url, 2)  # warm-up
        for i in range(args.runs):
            for name, server in names.items():
                before = tree_cpu(server.pid)
                runs[name].append(wrk(server.url + "/artifacts/central/" + SMALL_FILE, args.seconds))
                cpu[name].append((tree_cpu(server.pid) - before) / (runs[name][-1] * args.seconds) * 1e6)
                print(f"run {i + 1} {name}: {runs[name][-1]:.0f} req/s, {cpu[name][-1]:.0f} us CPU/request", flush=True)
    finally:
        many.close()
        one.close()
        upstream.close()
    medians = {name: statistics.median(v) for name, v in runs.items()}
    ratio = medians["workers = %d" % args.workers] / medians["workers = 1"]
    loadavg = " ".join(open("/proc/loadavg").read().split()[:3])
    print(
        f"\nMeasured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python bench/workers_bench.py "
        f"--workers {args.workers} --runs {args.runs} --seconds {args.seconds}` ({os.cpu_count()} CPUs, loopback, "
        f"load average before the end {loadavg}).\n"
    )
    print("| | req/s (median) | per run | server CPU per request (us, per run) |\n|---|---|---|---|")
    for name, values in runs.items():
        print(
            f"| {name} | {medians[name]:.0f} | {', '.join(f'{v:.0f}' for v in values)} "
            f"| {', '.join(f'{c:.0f}' for c in cpu[name])} |"
        )
    verdict = "OK" if ratio >= TARGET else "MISSED"
    print(f"\nworkers = {args.workers} vs 1: {ratio:.2f}x  target >= {TARGET}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
