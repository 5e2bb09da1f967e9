"""Prometheus metrics of one app, and the ASGI middleware that records every request.

Each app owns its ``CollectorRegistry``, so that tests (and anything else) can build many apps in one process
without clashing on metric names. Requests are labelled by route template (``/v1/items/{item_id}/similar``), never
by raw path, so the number of series stays bounded whatever ids callers send.

With several server processes (``shoprec serve --workers N``) the supervisor sets ``PROMETHEUS_MULTIPROC_DIR``
before the workers start: each records into files there, and a scrape of any worker adds up all of them. The number
of stored events is read from the store at scrape time, so it is right whichever process stored them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UNMATCHED = "<unmatched>"  # the route label of requests no route matched (404s on random paths)


class _StoredEvents(Collector):
    """``shoprec_events_stored``: asked of the store at each scrape."""

    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("shoprec_events_stored", "Events in the store.", value=self.count())


class Metrics:
    """The metric objects of one app, registered in its own registry; ``count_events`` reads the store."""

    def __init__(self, count_events: Callable[[], int]) -> None:
        self.multiprocess = MULTIPROCESS_ENV in os.environ
        self.stored_events = _StoredEvents(count_events)
        self.registry = CollectorRegistry()
        self.registry.register(self.stored_events)
        self.requests = Counter(
            "shoprec_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shoprec_request_duration_seconds",
            "Time from request to the end of the response, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_info = Gauge(
            "shoprec_model_info",
            "1 for the model being served, labelled by its version and name.",
            ["version", "model"],
            registry=self.registry,
            multiprocess_mode="livemax",  # workers serve one model: 1 once, not once per worker
        )
        self.items_served = Counter(
            "shoprec_items_served",
            "Items returned in recommendation, similar-item and search lists.",
            ["route"],
            registry=self.registry,
        )

    def serve_model(self, version: str, model: str) -> None:
        """Point the info gauge at the model now serving, so a reload leaves exactly one series at 1."""
        self.model_info.clear()
        self.model_info.labels(version=version, model=model).set(1)

    def exposition(self) -> bytes:
        """The Prometheus text of this app, or of every worker process when they share a metrics directory."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(self.stored_events)
        return generate_latest(registry)

    def close(self) -> None:
        """A stopping worker takes its model-info series with it (counts and latencies stay in the sums)."""
        if self.multiprocess:
            mark_process_dead(os.getpid())


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: a BaseHTTPMiddleware would add about a millisecond each).

    Added last, so it is the outermost of the app's middleware: the time runs from the app's first sight of the
    request to its response's last byte, and so covers whatever the request waited for inside the app (a lock,
    a turn in the micro-batcher, a thread of the pool) and the guard's refusals and 500s. It cannot cover the time
    before the server hands the request to the app: a request that arrives while a route blocks the event loop
    waits unseen (measured: 299 ms for the client, 0.6 ms here, behind a route that held the loop for 300 ms).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what an exception escaping the app becomes
        start = time.perf_counter()

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            # the router writes the matched route into this same scope dict
            route = getattr(scope.get("route"), "path", UNMATCHED)
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - start)
            self.metrics.requests.labels(route=route, method=scope["method"], status=str(status)).inc()
