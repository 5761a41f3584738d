"""Prometheus metrics of one app (its own registry): requests by route and status, latency histograms, errors
by status, requests per tenant. ``GET /metrics`` needs an admin key (tenant names are labels), so a tenant key
never learns which other tenants exist or how busy they are."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The counters and histograms that the request middleware feeds."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("asif_http_requests_total", "HTTP requests answered, by route and status.",
                                ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram("asif_http_request_duration_seconds", "Time to answer, by route.",
                                 ("method", "route"), buckets=BUCKETS, registry=self.registry)
        self.errors = Counter("asif_http_errors_total", "Answers with status >= 400, by status.", ("status",),
                              registry=self.registry)
        self.tenants = Counter("asif_tenant_requests_total", "Requests per tenant ('@admin' for admin keys).",
                               ("tenant",), registry=self.registry)
        self.in_flight = Gauge("asif_http_requests_in_flight", "Requests being answered.", registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float, tenant: str | None) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if status >= 400:
            self.errors.labels(str(status)).inc()
        if tenant is not None:
            self.tenants.labels(tenant).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
