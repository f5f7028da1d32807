"""Prometheus metrics of the server, on their own registry (served at /metrics)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # the *_created series double the output for nothing a dashboard uses

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "serving_requests",
            "Requests answered, by protocol, API, HTTP code, model version ('' if none) and arm "
            "(the version label a rollout's split or the client chose; '' if none)",
            ["protocol", "api", "code", "model", "version", "arm"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "serving_request_latency_seconds",
            "Time from request to answer, request log commit included",
            ["protocol", "api"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.examples = Counter(
            "serving_examples", "Examples predicted", ["model", "version"], registry=self.registry
        )
        self.batch_size = Histogram(
            "serving_model_batch_size",
            "Examples per model call (dynamic batching merges concurrent requests)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.loaded = Gauge(
            "serving_model_version_loaded",
            "1 for each model version loaded and serving",
            ["model", "version"],
            registry=self.registry,
        )
        self.load_failures = Counter(
            "serving_model_load_failures",
            "Version folders refused",
            ["model"],
            registry=self.registry,
        )
        self.unknown_features = Counter(
            "serving_unknown_feature_requests",
            "Requests served although some of their features are unknown to the model",
            ["model"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "serving_requests_in_flight", "Predict requests being served", registry=self.registry
        )
        self.shadow = Counter(
            "serving_shadow_predictions",
            "Shadow copies of requests scored (answers logged, never returned), by outcome: ok, "
            "or failed (the shadow version refused, failed or could not be logged)",
            ["model", "version", "outcome"],
            registry=self.registry,
        )
        self.rollout = Gauge(
            "serving_rollout_weight_percent",
            "The rollout in force: each split arm's weight, and the shadow's fraction of traffic",
            ["model", "arm", "role"],
            registry=self.registry,
        )
        self.log_rows = Counter(
            "serving_request_log_rows", "Rows committed to the request log", registry=self.registry
        )
        self.log_commit = Histogram(
            "serving_request_log_commit_seconds",
            "Time of one group commit of the request log",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def versions_changed(self, model: str, versions: list[int], refused: int | None) -> None:
        if refused is not None:
            self.load_failures.labels(model).inc()
        wanted = {str(v) for v in versions}
        for sample in list(self.loaded.collect()[0].samples):
            if sample.labels["model"] == model and sample.labels["version"] not in wanted:
                self.loaded.remove(model, sample.labels["version"])
        for version in wanted:
            self.loaded.labels(model, version).set(1)

    def rollout_changed(self, routes) -> None:
        """The gauge follows the rollout in force (serving.routing.Routes): old arms go."""
        self.rollout.clear()
        for model, rollout in routes.rollouts.items():
            for arm, weight in rollout.split:
                self.rollout.labels(model, arm, "split").set(weight)
            if rollout.shadow is not None:
                self.rollout.labels(model, rollout.shadow, "shadow").set(
                    100 * rollout.shadow_fraction
                )

    def log_committed(self, rows: int, seconds: float) -> None:
        self.log_rows.inc(rows)
        self.log_commit.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
