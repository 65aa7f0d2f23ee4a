"""``usr deploy init``: make a fresh deployment usable, idempotently.

Waits until Kafka answers, creates the stack's topics (with ``kafka.topics.partitions``
partitions; the stream jobs' own topics too when streams/ provides them), applies the
Feast definitions to the registry on the shared volume (which also checks the online
store), and creates the model repository directory. Run once by compose (service
``init``) and as an init container of the Kubernetes Deployments; running it again
changes nothing.
"""
from __future__ import annotations

import time
from typing import Any

from usr.config import Config


def wait_for_kafka(config: Config, timeout_s: float) -> str:
    from usr.kafka_client import broker_answers

    deadline = time.monotonic() + timeout_s
    detail = "not tried"
    while time.monotonic() < deadline:
        ok, detail = broker_answers(config.kafka)
        if ok:
            return detail
        time.sleep(2.0)
    raise TimeoutError(f"Kafka at {config.kafka.bootstrap} did not answer within {timeout_s:.0f}s: {detail}")


def create_topics(config: Config) -> list[str]:
    from usr.kafka_client import ensure_topics, topic_names

    created = ensure_topics(config.kafka)
    try:
        from streams.app import ensure_stream_topics
    except ModuleNotFoundError as exc:  # a build without streams/
        if not (exc.name or "").startswith("streams"):
            raise
    else:
        ensure_stream_topics(config)  # also checks that the event topics are co-partitioned
    return [n for n in topic_names(config.kafka) if n in created]


def apply_feast(config: Config, timeout_s: float) -> None:
    from features.store import apply_definitions, probe_roundtrip

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ok, detail = probe_roundtrip(apply_definitions(config))
            if ok:
                return
        except Exception as exc:  # noqa: BLE001 - the online store is still starting
            detail = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise TimeoutError(f"Feast online store ({config.feast.online_store}) not usable: {detail}")
        time.sleep(2.0)


def init(config: Config, timeout_s: float = 300.0) -> dict[str, Any]:
    t0 = time.monotonic()
    broker = wait_for_kafka(config, timeout_s)
    created = create_topics(config)
    apply_feast(config, max(10.0, timeout_s - (time.monotonic() - t0)))
    repo = config.triton.model_repository
    try:
        repo.mkdir(parents=True, exist_ok=True)
    except OSError:  # mounted read-only here: the retrainer creates it
        pass
    return {"kafka": broker, "topics_created": created, "feast": config.feast.online_store,
            "model_repository": str(repo), "seconds": round(time.monotonic() - t0, 1)}
