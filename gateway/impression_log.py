"""Logs every served list to Kafka as impression events (closing the loop into the
stream jobs). Sends are asynchronous; a failed delivery is counted, never raised
into the ranking call."""
from __future__ import annotations

import asyncio
import logging
import uuid

from aiokafka import AIOKafkaProducer

from gateway import metrics
from usr.config import KafkaConfig
from usr.data.events import encode_event, event_key, make_event

LOG = logging.getLogger("gateway.impressions")


def impression_events(request_id: str, user_id: int, scenario: str, query: str, item_ids, ts_ms: int):
    return [make_event(event_type="impression", event_id=f"{request_id}:{pos}:{uuid.uuid4().hex[:8]}",
                       request_id=request_id, user_id=user_id, item_id=int(item), scenario=scenario,
                       query=query if scenario == "search" else "", position=pos, ts=ts_ms)
            for pos, item in enumerate(item_ids)]


class ImpressionLogger:
    def __init__(self, kafka: KafkaConfig) -> None:
        from usr.kafka_client import aiokafka_kwargs

        self.topic = kafka.topics.impressions
        connection = aiokafka_kwargs(kafka)  # bootstrap, SASL and TLS as configured
        self._make = lambda: AIOKafkaProducer(acks=1, linger_ms=5, **connection)
        self.producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task | None = None

    async def start(self) -> None:
        """Connect in the background: the gateway serves while Kafka is unreachable."""
        self._connecting = asyncio.create_task(self._connect())

    async def _connect(self, retry_s: float = 2.0) -> None:
        while True:
            producer = self._make()
            try:
                await producer.start()
                self.producer = producer
                LOG.info("impression log connected to Kafka (topic %s)", self.topic)
                return
            except Exception as exc:  # noqa: BLE001 - keep trying; served lists are counted as not logged
                LOG.warning("impression log cannot reach Kafka yet: %s", exc)
                await producer.stop()
                await asyncio.sleep(retry_s)

    async def log(self, events) -> None:
        if self.producer is None:
            metrics.ERRORS.labels(kind="impression_log_unconnected").inc(len(events))
            return
        for ev in events:
            fut = await self.producer.send(self.topic, value=encode_event(ev), key=event_key(ev))
            fut.add_done_callback(_count)

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self.producer is not None:
            await self.producer.stop()


def _count(fut) -> None:
    if fut.exception() is not None:
        metrics.ERRORS.labels(kind="impression_log").inc()
        LOG.warning("impression event not delivered: %s", fut.exception())
    else:
        metrics.IMPRESSIONS_LOGGED.inc()
