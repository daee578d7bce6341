"""The server's Prometheus metrics, in a registry of its own (several servers can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Paths are labelled by route, never by the raw path, so strangers cannot grow the label set.
ROUTES = frozenset({"/", "/healthz", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/ground"})
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def route_label(path: str) -> str:
    return path if path in ROUTES else "other"


class ServerMetrics:
    """Requests by route and status, latency, batch sizes, queue depth and token counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "univg_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "univg_request_latency_seconds",
            "Time from request to the end of the response",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "univg_batch_size", "Requests per generation batch", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.batch_seconds = Histogram(
            "univg_batch_seconds",
            "Wall time of one generation batch",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "univg_queue_wait_seconds",
            "Time a request waited before its batch started",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge("univg_queue_depth", "Requests waiting for a batch", registry=self.registry)
        self.rejected = Counter(
            "univg_queue_rejected",
            "Requests refused with 503 because the queue was full",
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "univg_prompt_tokens", "Prompt tokens of answered requests", registry=self.registry
        )
        self.generated_tokens = Counter(
            "univg_generated_tokens", "Tokens generated for answered requests", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
