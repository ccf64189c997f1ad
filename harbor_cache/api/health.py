"""The health front: /health and /healthz, and the orchestrator probes /livez and /readyz.

A front like `api.front.ApiFront`: a Klein app with full-path routes,
mounted by `service` under each of its four first segments.  It only asks
the index, the storage and the free-space floor what is wrong and shapes the
answer; `api.console.ConsoleApi` asks the same `problems` for its dashboard.
"""

from __future__ import annotations

from klein import Klein

from harbor_cache import __version__
from harbor_cache.http.request import HarborRequest
from harbor_cache.http.responses import install_error_handlers, json_response


class HealthFront:
    """/health, /healthz and the orchestrator probes /livez and /readyz (/metrics is prometheus_client's own).

    /health is the API contract's (and what load balancers poll). The probes
    split it for Kubernetes and the like: /livez fails only when the process
    does not answer at all, so a database outage or a full disk (which no
    restart mends, and through which warm hits from memory keep being
    served) never restarts the process; /readyz fails on the same problems
    as /health, so a node that cannot serve is taken out of rotation.
    """

    app = Klein()
    install_error_handlers(app)

    def __init__(self, index, storage, metrics, space=None):
        self.index = index
        self.storage = storage
        self.metrics = metrics
        self.space = space  # core.operations.diskspace.DiskSpace: "disk_space" below cache.min_free_bytes

    async def problems(self) -> list[str]:
        """What is wrong now: "index" (no answer to a ping), "data_dir" (not writable); [] when healthy."""
        problems = []
        try:
            ok = await self.index.ping()
            if not ok:
                problems.append("index")
        except Exception:
            problems.append("index")
        if not self.storage.usable():
            problems.append("data_dir")
        if self.space is not None and self.space.low():
            problems.append("disk_space")
        bucket = getattr(self.storage, "bucket", None)
        if bucket is not None and bucket.reachable is False:  # [storage] backend = "s3": the last probe failed
            problems.append("bucket")
        return problems

    @app.route("/health", methods=["GET", "HEAD"])
    @app.route("/healthz", methods=["GET", "HEAD"])
    async def health(self, request: HarborRequest):
        self.metrics.health_checks.inc()
        problems = await self.problems()
        if problems:
            body = json_response(request, {"status": "degraded", "version": __version__, "problems": problems}, 503)
        else:
            body = json_response(request, {"status": "healthy", "version": __version__})
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b"" if request.method == b"HEAD" else body

    @app.route("/livez", methods=["GET", "HEAD"])
    def livez(self, request: HarborRequest):
        """200 whenever the reactor runs this: nothing here waits for the index or the disk."""
        body = json_response(request, {"status": "alive", "version": __version__})
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b"" if request.method == b"HEAD" else body

    @app.route("/readyz", methods=["GET", "HEAD"])
    async def readyz(self, request: HarborRequest):
        """200 when this node can serve (index answers, data directory writable, free space above the floor)."""
        problems = await self.problems()
        if problems:
            body = json_response(request, {"status": "not_ready", "version": __version__, "problems": problems}, 503)
        else:
            body = json_response(request, {"status": "ready", "version": __version__})
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b"" if request.method == b"HEAD" else body
