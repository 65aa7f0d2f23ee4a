"""Logs every served list to Kafka as impression events (closing the loop into the
stream jobs). Sends are asynchronous; a failed delivery is counted, never raised
into the ranking call."""
from __future__ import annotations

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
        self.topic = kafka.topics.impressions
        sasl = {}
        if kafka.security_protocol.startswith("SASL"):
            from usr.kafka_client import client_kwargs

            kw = client_kwargs(kafka)
            sasl = {"sasl_mechanism": kw["sasl_mechanism"], "sasl_plain_username": kw["sasl_plain_username"],
                    "sasl_plain_password": kw["sasl_plain_password"]}
        self.producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks=1, linger_ms=5,
                                         security_protocol=kafka.security_protocol, **sasl)
        self.started = False

    async def start(self) -> None:
        await self.producer.start()
        self.started = True

    async def log(self, events) -> None:
        for ev in events:
            fut = await self.producer.send(self.topic, value=encode_event(ev), key=event_key(ev))
            fut.add_done_callback(_count)

    async def stop(self) -> None:
        if self.started:
            await self.producer.stop()


def _count(fut) -> None:
    if fut.exception() is not None:
        metrics.ERRORS.labels(kind="impression_log").inc()
        LOG.warning("impression event not delivered: %s", fut.exception())
    else:
        metrics.IMPRESSIONS_LOGGED.inc()
