"""The gRPC ranking gateway: validate, read features, score on Triton (or fall back to
popularity), return the ranked list, log it to Kafka.

Run: ``python -m gateway.server [--config FILE]`` (``usr stack up`` does this).
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import logging
import signal
import time
from dataclasses import dataclass

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from features.tensors import build_input_arrays
from gateway import metrics
from gateway.online_features import FeatureSource, ItemCache
from gateway.proto import SERVICE_NAME, pb, pb_grpc
from gateway.rows import candidate_columns
from gateway.scorer import ModelRepository, Scores, TritonScorer
from gateway.validation import InvalidRequest, RankQuery, validate
from usr.config import Config, GatewayConfig, load_config

LOG = logging.getLogger("gateway")


@dataclass
class Ranked:
    order: np.ndarray
    ctr: np.ndarray
    ctcvr: np.ndarray
    score: np.ndarray
    version: str
    fallback_reason: str


def objective_scores(cfg: GatewayConfig, ctr: np.ndarray, ctcvr: np.ndarray) -> np.ndarray:
    if cfg.objective == "ctr":
        return ctr
    if cfg.objective == "ctcvr":
        return ctcvr
    return cfg.ctr_weight * ctr + cfg.ctcvr_weight * ctcvr


class RankingService(pb_grpc.RankingServicer):
    def __init__(self, config: Config, features: FeatureSource, scorer: TritonScorer | None,
                 repository: ModelRepository, impressions=None) -> None:
        self.config = config
        self.cfg = config.gateway
        self.features = features
        self.items = ItemCache(features, config.gateway.item_cache_ttl_s)
        self.scorer = scorer
        self.repository = repository
        self._repositories: dict[str, ModelRepository] = {}
        self.impressions = impressions
        # Feast objects are not shared across threads: one thread does every feature read
        self._feature_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="features")
        self._reshape: set[str] | None = None

    async def _read_features(self, q: RankQuery) -> tuple[dict, list[dict]]:
        def read():
            t0 = time.perf_counter()
            try:
                user = self.features.user(q.user_id)
            except Exception:  # noqa: BLE001 - an unreadable user gets defaults
                LOG.exception("user features unavailable")
                metrics.ERRORS.labels(kind="user_features").inc()
                user = {}
            t1 = time.perf_counter()
            hits0, misses0 = self.items.hits, self.items.misses
            try:
                items = self.items.get(q.candidates.tolist())
            except Exception:  # noqa: BLE001
                LOG.exception("item features unavailable")
                metrics.ERRORS.labels(kind="item_features").inc()
                items = [{} for _ in range(len(q.candidates))]
            metrics.CACHE.labels(result="hit").inc(self.items.hits - hits0)
            metrics.CACHE.labels(result="miss").inc(self.items.misses - misses0)
            metrics.STAGE.labels(stage="user_features").observe(t1 - t0)
            metrics.STAGE.labels(stage="item_features").observe(time.perf_counter() - t1)
            return user, items

        return await asyncio.get_running_loop().run_in_executor(self._feature_thread, read)

    def repository_for(self, model: str) -> ModelRepository:
        """The default model's repository, or another model's (A/B tests) from the same root."""
        if not model:
            return self.repository
        if model not in self._repositories:
            root = self.repository.model_dir.parent
            if not (root / model).is_dir():
                raise InvalidRequest("model", f"model {model!r} is not in the model repository")
            self._repositories[model] = ModelRepository(root, model)
        return self._repositories[model]

    async def _score(self, q: RankQuery, user: dict, items: list[dict]) -> tuple[Scores | None, str]:
        repository = self.repository_for(q.model)
        version = repository.serving_version()
        if version is None:
            return None, "no model published"
        if self.scorer is None:
            return None, "no model server configured"
        t0 = time.perf_counter()
        spec = repository.spec(version)
        arrays = build_input_arrays(spec, candidate_columns(q, user, items), allow_missing=True)
        if self._reshape is None:
            self._reshape = {i["name"] for i in repository.signature()["inputs"] if i.get("reshape") == []}
        metrics.STAGE.labels(stage="build_inputs").observe(time.perf_counter() - t0)
        t1 = time.perf_counter()
        model_name = q.model or None
        try:
            scores = await self.scorer.score(arrays, self._reshape, model_name)
        except Exception as exc:  # noqa: BLE001 - unreachable, deadline, model unloaded ...
            status = getattr(exc, "status", lambda: None)()
            reason = "model server deadline exceeded" if "DEADLINE" in str(status) else "model server unavailable"
            LOG.warning("%s: %s", reason, str(exc)[:200])
            return None, reason
        finally:
            metrics.STAGE.labels(stage="triton").observe(time.perf_counter() - t1)
        if scores.model_version != version and repository.spec(scores.model_version) != spec:
            # the server switched to a version with another feature spec between our read and its answer
            arrays = build_input_arrays(repository.spec(scores.model_version),
                                        candidate_columns(q, user, items), allow_missing=True)
            scores = await self.scorer.score(arrays, self._reshape, model_name)
        return scores, ""

    async def rank(self, q: RankQuery) -> Ranked:
        user, items = await self._read_features(q)
        scores, reason = await self._score(q, user, items)
        if scores is None:
            metrics.FALLBACKS.labels(reason=reason).inc()
            popularity = np.array([float(r.get("popularity") or 0.0) for r in items], dtype=np.float32)
            # stable: equal popularity keeps the caller's order
            order = np.argsort(-popularity, kind="stable")
            zeros = np.zeros(len(items), dtype=np.float32)
            return Ranked(order, zeros, zeros, popularity, "", reason)
        score = objective_scores(self.cfg, scores.ctr, scores.ctcvr)
        order = np.argsort(-score, kind="stable")
        metrics.MODEL_VERSION.set(scores.model_version)
        return Ranked(order, scores.ctr, scores.ctcvr, score, str(scores.model_version), "")

    async def Rank(self, request, context):  # noqa: N802 - gRPC method name
        t0 = time.perf_counter()
        scenario = request.scenario if request.scenario in ("search", "rec") else "invalid"
        try:
            q = validate(request, self.cfg.max_candidates)
            self.repository_for(q.model)
        except InvalidRequest as exc:
            metrics.REQUESTS.labels(scenario=scenario, outcome="invalid").inc()
            metrics.ERRORS.labels(kind="invalid_argument").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            ranked = await self.rank(q)
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the server; the caller learns it
            LOG.exception("rank failed")
            metrics.REQUESTS.labels(scenario=scenario, outcome="error").inc()
            metrics.ERRORS.labels(kind="internal").inc()
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        ids = q.candidates[ranked.order]
        response = pb.RankResponse(
            request_id=q.request_id, model_version=ranked.version, fallback=bool(ranked.fallback_reason),
            fallback_reason=ranked.fallback_reason, objective=self.cfg.objective,
            items=[pb.ScoredItem(item_id=int(i), ctr=float(ranked.ctr[k]), ctcvr=float(ranked.ctcvr[k]),
                                 score=float(ranked.score[k]), position=pos)
                   for pos, (i, k) in enumerate(zip(ids, ranked.order))],
        )
        if q.log_impressions and self.impressions is not None:
            from gateway.impression_log import impression_events

            try:
                await self.impressions.log(impression_events(q.request_id, q.user_id, q.scenario, q.query, ids,
                                                             q.ts_ms))
            except Exception:  # noqa: BLE001 - logging must not fail the ranking
                LOG.exception("impression logging failed")
                metrics.ERRORS.labels(kind="impression_log").inc()
        metrics.REQUESTS.labels(scenario=q.scenario, outcome="fallback" if ranked.fallback_reason else "ok").inc()
        metrics.LATENCY.labels(scenario=q.scenario).observe(time.perf_counter() - t0)
        return response


def build_service(config: Config, features: FeatureSource | None = None) -> RankingService:
    if features is None:
        from features.store import open_store
        from gateway.online_features import FeastFeatureSource

        features = FeastFeatureSource(open_store(config))
    repository = ModelRepository(config.triton.model_repository, config.triton.model_name)
    scorer = TritonScorer(config.triton.grpc_url, config.triton.model_name, config.gateway.triton_timeout_ms / 1000)
    return RankingService(config, features, scorer, repository)


async def serve(config: Config, service: RankingService | None = None, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None, log_impressions: bool = True) -> None:
    from prometheus_client import start_http_server

    service = service or build_service(config)
    if log_impressions and service.impressions is None:
        from gateway.impression_log import ImpressionLogger

        service.impressions = ImpressionLogger(config.kafka)
        await service.impressions.start()
    from gateway.auth import server_interceptors  # token auth when gateway.auth_token_env is set

    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)], interceptors=server_interceptors(config.gateway))
    pb_grpc.add_RankingServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, reflection.SERVICE_NAME, health.SERVICE_NAME), server)
    g = config.gateway
    address = f"{g.host}:{g.port}"
    if g.tls_cert and g.tls_key:
        creds = grpc.ssl_server_credentials([(g.tls_key.read_bytes(), g.tls_cert.read_bytes())])
        server.add_secure_port(address, creds)
    else:
        server.add_insecure_port(address)
    metrics_server, metrics_thread = start_http_server(g.metrics_port, addr=g.host, registry=metrics.REGISTRY)
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    gc.collect()
    gc.freeze()  # long-lived feast/pandas/torch objects: keeps gen-2 pauses out of p99
    LOG.info("gateway serving on %s (metrics on %d)", address, g.metrics_port)
    if ready is not None:
        ready.set()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (RuntimeError, ValueError):  # not the main thread
            pass
    await stop.wait()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.stop(grace=2.0)
    metrics_server.shutdown()
    if service.impressions is not None:
        await service.impressions.stop()
    if service.scorer is not None:
        await service.scorer.close()


def main() -> int:
    ap = argparse.ArgumentParser(description="USR ranking gateway")
    ap.add_argument("--config")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = load_config(args.config)
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
