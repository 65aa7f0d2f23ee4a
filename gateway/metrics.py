"""Prometheus metrics of the gateway (served on ``gateway.metrics_port``)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()
LATENCY = Histogram("usr_gateway_rank_seconds", "Rank latency, end to end in the server", ["scenario"],
                    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0),
                    registry=REGISTRY)
STAGE = Histogram("usr_gateway_stage_seconds", "Time per stage of a Rank call", ["stage"],
                  buckets=(0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5), registry=REGISTRY)
REQUESTS = Counter("usr_gateway_requests_total", "Rank calls by outcome", ["scenario", "outcome"], registry=REGISTRY)
ERRORS = Counter("usr_gateway_errors_total", "Errors by kind", ["kind"], registry=REGISTRY)
FALLBACKS = Counter("usr_gateway_fallbacks_total", "Fallback rankings by reason", ["reason"], registry=REGISTRY)
CACHE = Counter("usr_gateway_item_cache_total", "Item feature cache lookups", ["result"], registry=REGISTRY)
MODEL_VERSION = Gauge("usr_gateway_model_version", "Version of the model that scored the last request",
                      registry=REGISTRY)
IMPRESSIONS_LOGGED = Counter("usr_gateway_impressions_logged_total", "Impression events sent to Kafka",
                             registry=REGISTRY)
