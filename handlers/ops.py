"""Operations endpoints: readiness, Prometheus metrics, and a test-only loop blocker."""

from __future__ import annotations

import time

from tornado.web import HTTPError

from api.answers.ops import Readiness
from handlers.base import JsonHandler
from observability import metrics

# The longest /debug/block may hold a worker: enough to trip any heartbeat timeout,
# short enough that a forgotten test cannot wedge a worker for long.
MAX_BLOCK_S = 60.0


class ReadyHandler(JsonHandler):
    """Ready to serve: database reachable, migrations current, not draining (else 503)."""

    async def get(self) -> None:
        checked = await self.deps.ops.readiness.check()
        draining = self.deps.state.draining
        body = Readiness(
            **{**checked, "ready": checked["ready"] and not draining},
            draining=draining,
            worker=self.deps.worker_index,
        )
        self.write_json(body, 200 if body.ready else 503)


class MetricsHandler(JsonHandler):
    """Prometheus metrics of every worker, for the allowed networks or the bearer token."""

    def get(self) -> None:
        body, content_type = readable_metrics(self, "metrics are")
        self.set_header("Content-Type", content_type)
        self.finish(body)


def readable_metrics(handler: JsonHandler, what: str) -> tuple[bytes, str]:
    """The metrics exposition, for a client that may read it (the one rule of /metrics
    and the dashboard): 404 while metrics are off, 403 outside the allowed networks
    without the token. `what` names the refused thing ("metrics are")."""
    access = handler.deps.ops.metrics
    if not access.enabled:
        raise HTTPError(404, "metrics are disabled")
    # The client's address as the rate limits see it: behind a trusted proxy, the
    # proxy's own (loopback) address must not open the metrics to everyone.
    if not access.allows(handler.client_ip(), handler.header("Authorization")):
        raise HTTPError(403, "%s not available to this client", what)
    return metrics.render()


class DebugBlockHandler(JsonHandler):
    """Blocks this worker's event loop (`?seconds=`), to test the heartbeat watchdog.

    Routed only when `debug.block_route` is on, which production mode refuses.
    """

    def get(self) -> None:
        if not self.deps.ops.debug_block_route:
            raise HTTPError(404, "no such endpoint: %s", self.request.path)
        try:
            seconds = min(float(self.get_query_argument("seconds", "1")), MAX_BLOCK_S)
        except ValueError:
            raise HTTPError(400, "seconds must be a number") from None
        time.sleep(seconds)
        self.write_json({"blocked_s": seconds})
