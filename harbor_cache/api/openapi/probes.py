"""/health, /healthz, the orchestrator probes /livez and /readyz, and /metrics: what load balancers poll."""

from __future__ import annotations

from functools import partial

from harbor_cache.api.openapi.common import STRING, array_of, json_body, obj, operation, ref

SCHEMAS = {
    "Health": obj(
        ["status", "version"],
        status={"type": "string", "enum": ["healthy", "degraded"]},
        version=STRING,
        problems=array_of(STRING),
    ),
    "Liveness": obj(["status", "version"], status={"type": "string", "enum": ["alive"]}, version=STRING),
    "Readiness": obj(
        ["status", "version"],
        status={"type": "string", "enum": ["ready", "not_ready"]},
        version=STRING,
        problems=array_of({"type": "string", "enum": ["index", "data_dir", "disk_space"]}),
    ),
}

# Every probe is public.
_op = partial(operation, tag="health", security=[])


def paths() -> dict:
    """The probes' paths."""
    health = {
        "200": json_body(ref("Health"), "Index and data directory usable."),
        "503": json_body(ref("Health"), "Degraded: problems lists what failed."),
    }
    return {
        "/health": {"get": _op("health", "Health check", health)},
        "/healthz": {"get": _op("healthz", "Alias for /health", health)},
        "/livez": {
            "get": _op(
                "livez",
                "Liveness probe: the process answers (never fails for the index or the disk)",
                {"200": json_body(ref("Liveness"), "The process and its event loop answer.")},
            )
        },
        "/readyz": {
            "get": _op(
                "readyz",
                "Readiness probe: the node can serve",
                {
                    "200": json_body(
                        ref("Readiness"),
                        "Index reachable, data directory writable, free space above cache.min_free_bytes.",
                    ),
                    "503": json_body(ref("Readiness"), "Not ready: problems lists what failed."),
                },
            )
        },
        "/metrics": {
            "get": _op(
                "metrics",
                "Prometheus metrics",
                {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": STRING}}}},
            )
        },
    }
