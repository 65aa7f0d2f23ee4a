"""Reading the workers' progress: their ``/status`` pages against the topics' end
offsets (used by the stack's health check, the tests and the benchmarks)."""
from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from streams.processor import internal_topic
from usr.config import Config


def worker_status(port: int, host: str = "127.0.0.1", timeout_s: float = 2.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/status", timeout=timeout_s) as resp:
            return json.loads(resp.read())
    except Exception:  # noqa: BLE001 - not up (yet), or gone
        return None


def end_offsets(config: Config) -> dict[tuple[str, int], int]:
    """End offset of every partition of the event topics and the internal topic."""
    from kafka import KafkaConsumer, TopicPartition

    from usr.kafka_client import client_kwargs

    t = config.kafka.topics
    consumer = KafkaConsumer(**client_kwargs(config.kafka))
    try:
        tps = [TopicPartition(topic, p) for topic in (t.impressions, t.clicks, t.orders, internal_topic(config))
               for p in range(t.partitions)]
        return {(tp.topic, tp.partition): off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def caught_up(config: Config, statuses: list[dict[str, Any]], ends: dict[tuple[str, int], int],
              require_drained: bool = True) -> bool:
    """Every partition owned by some worker, read to its end, and (``require_drained``)
    nothing waiting for the watermark. A log that goes on (live traffic after a replay)
    leaves its newest impressions waiting for their attribution windows: pass False."""
    t = config.kafka.topics
    stage1: dict[str, Any] = {}
    stage2: dict[str, Any] = {}
    for s in statuses:
        if s.get("busy") or s.get("unflushed"):
            return False
        stage1.update(s["stage1"])
        stage2.update(s["stage2"])
    for p in range(t.partitions):
        s1, s2 = stage1.get(str(p)), stage2.get(str(p))
        if s1 is None or s2 is None or (require_drained and not s1["drained"]):
            return False
        for kind, topic in (("impression", t.impressions), ("click", t.clicks), ("order", t.orders)):
            if s1["next_offset"][kind] < ends[(topic, p)]:
                return False
        if s2["next_offset"] < ends[(internal_topic(config), p)]:
            return False
    return True


def wait_caught_up(config: Config, ports: list[int], timeout_s: float = 120.0, settle_s: float = 1.0,
                   require_drained: bool = True) -> list[dict]:
    """Wait until the workers on ``ports`` have processed everything published so far
    (including the item records they emitted themselves); returns their statuses."""
    deadline = time.monotonic() + timeout_s
    last: list[dict] = []
    while time.monotonic() < deadline:
        statuses = [worker_status(p) for p in ports]
        if all(s is not None for s in statuses):
            last = statuses  # type: ignore[assignment]
            if caught_up(config, last, end_offsets(config), require_drained):
                time.sleep(settle_s)    # a last step may still be writing
                again = [worker_status(p) for p in ports]
                if all(s is not None for s in again) and caught_up(config, again, end_offsets(config),  # type: ignore[arg-type]
                                                                   require_drained):
                    return again  # type: ignore[return-value]
        time.sleep(0.3)
    raise TimeoutError(f"workers on {ports} did not catch up in {timeout_s:.0f}s; last status: "
                       f"{json.dumps(last)[:2000]}")
