"""Every Prometheus metric railproxy exports, against an injected registry.

Names follow Prometheus practice: prefix ``railproxy_``, base units (seconds), ``_total``
on counters, labels of low cardinality only (route templates, config ids, rail names,
fixed verdict/kind sets; never request ids, text or raw model names).

With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set), values are written to
that directory and ``render`` merges every worker's files into one scrape.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from rails.base import Mode, Stage

if TYPE_CHECKING:
    from proxy.configs import ConfigSet

LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# 100 µs (a local rail, the relay's own cost) to 30 s
FINE: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025)
FINE = (*FINE, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
VERDICTS = ("allow", "block", "modify", "error", "timeout")
UPSTREAM_ERRORS = ("connect", "timeout", "status", "in_band", "eof", "unreadable")
CHILDREN_MAX = 4096  # label sets kept looked up (the labels are of low cardinality)
ROUTE_REFUSALS = ("invalid_path", "method_not_allowed", "route_variant", "route_not_guarded")


class Metrics:
    """The metric objects, created once per process at start-up."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "railproxy_requests",
            "Requests answered, by route and HTTP status.",
            ["route", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            "railproxy_request_duration_seconds",
            "Request arrival to last byte written.",
            ["route"],
            buckets=LATENCY,
            registry=r,
        )
        self.ttft = Histogram(
            "railproxy_time_to_first_token_seconds",
            "Request arrival to the first content byte written to the client.",
            ["route", "config"],
            buckets=LATENCY,
            registry=r,
        )
        self.upstream_ttft = Histogram(
            "railproxy_upstream_time_to_first_token_seconds",
            "Request sent upstream to the first content delta received from it.",
            ["route"],
            buckets=LATENCY,
            registry=r,
        )
        self.added_ttft = Histogram(
            "railproxy_added_time_to_first_token_seconds",
            "Time to first token added by railproxy: client TTFT minus upstream TTFT.",
            ["route", "config"],
            buckets=FINE,
            registry=r,
        )
        self.inter_token = Histogram(
            "railproxy_inter_token_seconds",
            "Gaps between content writes to the client.",
            ["route"],
            buckets=LATENCY,
            registry=r,
        )
        self.rail_duration = Histogram(
            "railproxy_rail_duration_seconds",
            "One rail's check of one text.",
            ["rail", "stage"],
            buckets=FINE,
            registry=r,
        )
        self.rail_verdicts = Counter(
            "railproxy_rail_verdicts",
            "Rail verdicts: allow, block, modify, error, timeout; mode enforce, or monitor "
            "(judged and counted, nothing blocked or masked).",
            ["rail", "stage", "verdict", "mode"],
            registry=r,
        )
        self.streams_blocked = Counter(
            "railproxy_streams_blocked",
            "Streams (and requests) ended by a rail.",
            ["rail"],
            registry=r,
        )
        self.active_streams = Gauge(
            "railproxy_active_streams",
            "Streams being relayed now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.tokens = Counter(
            "railproxy_tokens",
            "Generated tokens: relayed to clients, and held back before release "
            "(stream_first false).",
            ["direction"],
            registry=r,
        )
        self.windows = Counter(
            "railproxy_windows_checked",
            "Rolling-buffer windows judged by output rails.",
            registry=r,
        )
        self.holdback = Histogram(
            "railproxy_holdback_seconds",
            "How long an event was held before release (stream_first false).",
            buckets=LATENCY,
            registry=r,
        )
        self.upstream_errors = Counter(
            "railproxy_upstream_errors",
            "Upstream failures: connect, timeout, status (non-2xx), in_band, eof, unreadable "
            "(a body or event railproxy cannot read as the client would, so cannot judge).",
            ["kind"],
            registry=r,
        )
        self.disconnects = Counter(
            "railproxy_client_disconnects",
            "Clients that went away before their response ended.",
            registry=r,
        )
        self.usage_tokens = Counter(
            "railproxy_usage_tokens",
            "Prompt and completion tokens per config (for billing).",
            ["kind", "config"],
            registry=r,
        )
        self.routes_refused = Counter(
            "railproxy_routes_refused",
            "Requests refused for their route: invalid_path, method_not_allowed, "
            "route_variant, route_not_guarded.",
            ["reason"],
            registry=r,
        )
        for reason in ROUTE_REFUSALS:  # every series exists before the first refusal
            self.routes_refused.labels(reason)
        self.client_requests = Counter(
            "railproxy_client_requests",
            "Requests answered per client key name (server.api_keys), by HTTP status.",
            ["client", "code"],
            registry=r,
        )
        self.config_reloads = Counter(
            "railproxy_config_reloads",
            "Config reload attempts, by result (ok, error).",
            ["result"],
            registry=r,
        )
        self.config_info = Gauge(
            "railproxy_config_info",
            "The rails configs loaded, with a hash of their content.",
            ["config", "hash"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.build_info = Gauge(
            "railproxy_build_info",
            "railproxy's version (value 1).",
            ["version"],
            registry=r,
            multiprocess_mode="max",
        )

    # -- recording ------------------------------------------------------------------

    def child(self, metric: Counter | Histogram, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once: per request and per window, the
        lookup (label validation, a lock, a dict) costs as much as the observation."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = metric.labels(*values)
            if len(self._children) < CHILDREN_MAX:
                self._children[key] = found
        return found

    def rail_done(self, rail: str, stage: Stage, verdict: str, seconds: float, mode: Mode) -> None:
        """``rails.pipeline.PipelineObserver``: one rail call finished."""
        self.child(self.rail_duration, rail, stage).observe(seconds)
        self.child(self.rail_verdicts, rail, stage, verdict, mode).inc()

    def register(self, version: str, configs: ConfigSet) -> None:
        """Start-up facts as metrics, and every rail call of ``configs`` reported here."""
        self.build_info.labels(version).set(1)
        self._watch(configs)

    def reload_hook(self) -> Callable[[str, ConfigSet | None], None]:
        """Counts reloads, and registers a new config set's rails (``ServerState``)."""
        for result in ("ok", "error"):
            self.config_reloads.labels(result)  # both series exist before the first reload

        def on_reload(result: str, configs: ConfigSet | None) -> None:
            self.config_reloads.labels(result).inc()
            if configs is not None:
                self._watch(configs)

        return on_reload

    def _watch(self, configs: ConfigSet) -> None:
        configs.observe(self)
        configs.warm()
        self.set_configs({cid: configs.get(cid).digest for cid in configs.ids})

    def set_configs(self, hashes: dict[str, str]) -> None:
        self.config_info.clear()
        for config, digest in hashes.items():
            self.config_info.labels(config, digest).set(1)

    def render(self) -> tuple[bytes, str]:
        """The scrape body and its content type; merged over workers when multiprocess."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
