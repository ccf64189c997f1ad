#!/usr/bin/env python3
"""Where a cold blob GET spends harbor-cache's CPU: py-spy on the server during one curl.

    python3 bench/cold_profile.py [--large-mib 200] [--runs 3] [--rate 500] [--out DIR]
    python3 bench/cold_profile.py --no-spy --runs 6 --baseline DIR   # CPU and time only, A/B against DIR

Starts distribution (the upstream) and, per run, a fresh harbor-cache; runs
``py-spy record --threads --idle=false --format raw`` on the server while curl
GETs the large layer cold, then prints the share of busy samples per thread
and per leaf frame (waits left out) (the raw collapsed stacks stay in ``--out``), and the
server's CPU seconds (utime+stime from /proc) per MiB. With ``--baseline``
(another checkout, as in ``oci_bench.py``) each run also measures that
build, alternating which goes first; CPU per MiB depends less on a busy
machine than wall time does. Needs py-spy
(``pip install py-spy``), docker-registry, skopeo and curl.
"""

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from bench.oci_bench import cpu_seconds, tree_harbor  # noqa: E402
from tests.integration import oci_support as oci  # noqa: E402
from tests.integration import support  # noqa: E402

MIB = 1 << 20
# Leaf frames of threads that wait (py-spy counts some waits as busy): left out of the shares.
WAITING = ("Condition.wait", "EPollReactor.doPoll", "Queue.get")


def thread_cpu(pid):
    """(reactor thread's CPU seconds, all other threads' CPU seconds) of process ``pid``."""
    main = other = 0.0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # a thread that just ended
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if int(tid) == pid:
            main += cpu
        else:
            other += cpu
    return main, other


def leaf(stack):
    """The innermost frame of a collapsed stack, without the file's directory."""
    frame = stack.split(";")[-1]
    return frame.split(" (")[0] + " (" + frame.split("(")[-1].split("/")[-1] if "(" in frame else frame


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large-mib", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    ap.add_argument("--out", default=None, help="where the raw profiles go (default: a temp dir)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--no-spy", action="store_true", help="no profiler: CPU and time only")
    ap.add_argument("--baseline", metavar="DIR", default=None, help="another checkout to measure alternately")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="cold-profile-")
    os.makedirs(out, exist_ok=True)
    layout, images = support.oci_layout(large=args.large_mib)
    layer = max(images["images"]["large"]["layers"], key=lambda l: l["size"])
    blob_path = "/v2/library/test/blobs/" + layer["digest"]
    reg = support.Registry()
    support.push_layout(layout, reg.hostport, "library/test", names=["large"])
    threads = collections.Counter()
    leaves = collections.Counter()
    total = 0
    try:
        builds = [("this", None)] + ([("base", os.path.abspath(args.baseline))] if args.baseline else [])
        figures = {name: [] for name, _ in builds}
        for run in range(args.runs):
            for name, tree in builds if run % 2 == 0 else builds[::-1]:
                config = oci.harbor_config(reg.url)
                srv = tree_harbor(tree, config) if tree else support.HarborServer(config)
                raw = os.path.join(out, "%s-run%d.txt" % (name, run))
                spy = None
                try:
                    if not args.no_spy:
                        spy = subprocess.Popen(
                            [
                                "py-spy",
                                "record",
                                "-r",
                                str(args.rate),
                                "--threads",
                                "--nonblocking",
                                "--format",
                                "raw",
                                "-o",
                                raw,
                                "-p",
                                str(srv.pid),
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                        time.sleep(1.0)
                    cpu0 = cpu_seconds(srv.pid)
                    main0, other0 = thread_cpu(srv.pid)
                    cp = support.check_ok(
                        support.run(
                            ["curl", "-sf", "-o", "/dev/null", "-w", "%{time_total}", srv.url + blob_path], timeout=600
                        )
                    )
                    cpu = cpu_seconds(srv.pid) - cpu0
                    main1, other1 = thread_cpu(srv.pid)
                    if spy is not None:
                        time.sleep(0.3)
                        spy.send_signal(2)
                        spy.wait(30)
                finally:
                    srv.close()
                figures[name].append((float(cp.stdout), cpu))
                print(
                    "run %d %-4s: curl %.3f s, server CPU %.3f s (%.2f ms/MiB; reactor thread %.3f s, others %.3f s)"
                    % (
                        run,
                        name,
                        float(cp.stdout),
                        cpu,
                        cpu * 1000 / (layer["size"] / MIB),
                        main1 - main0,
                        other1 - other0,
                    ),
                    flush=True,
                )
                if spy is None or tree is not None:
                    continue  # the profile shows this build only
                with open(raw) as f:
                    for line in f:
                        stack, _, count = line.rstrip("\n").rpartition(" ")
                        if not stack:
                            continue
                        n = int(count)
                        if leaf(stack).startswith(WAITING):
                            continue
                        thread = stack.split(";")[0]
                        threads[thread.split(" ")[0] + " " + thread.split(" ")[-1]] += n
                        leaves[leaf(stack)] += n
                        total += n
    finally:
        reg.close()
    for name, values in figures.items():
        times = sorted(t for t, _ in values)
        cpus = sorted(c for _, c in values)
        mid = len(values) // 2
        print(
            "%-4s median curl %.3f s, median server CPU %.3f s (%.2f ms/MiB); runs: %s"
            % (
                name,
                times[mid],
                cpus[mid],
                cpus[mid] * 1000 / (layer["size"] / MIB),
                ", ".join("%.3f/%.3f" % v for v in values),
            )
        )
    if not total:
        return
    print("\n%d busy samples over %d runs (raw stacks in %s)" % (total, args.runs, out))
    print("\nby thread:")
    for name, n in threads.most_common():
        print("  %5.1f%%  %s" % (100 * n / total, name))
    print("\nby leaf frame:")
    for name, n in leaves.most_common(args.top):
        print("  %5.1f%%  %s" % (100 * n / total, name))


if __name__ == "__main__":
    main()
