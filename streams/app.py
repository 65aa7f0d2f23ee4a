"""The Faust application of a stream worker, with its two consumption drivers.

Both drivers feed the same :class:`streams.processor.Processor` steps; they differ only in
how messages come out of Kafka:

* ``faust`` — a Faust agent over the four topics (three event topics and the internal
  item topic); ``stream.take_events(batch_size, within=flush_interval_s)`` hands it
  batches; Faust acks a batch after the step (checkpoint included) returns, so its
  committed offsets never pass the checkpoints. Faust's per-message machinery caps it
  at roughly 10k messages/s on one core (measured, see bench/).
* ``direct`` (default) — the Faust app hosts a service that reads the same topics with
  aiokafka ``getmany`` batches (the Range assignor keeps the three event topics
  co-partitioned), seeks to the checkpoint offsets on assignment, and commits the
  checkpointed offsets after each step. Same semantics, without the per-message cost.

Either way the app serves ``/status`` (JSON) on its web port: the health check of
``usr stack`` and the progress readout of the tests and benchmarks.
"""
from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from typing import Any

import faust
from mode import Service

from streams.processor import Processor, internal_topic, stream_topics
from usr.config import Config

log = logging.getLogger("streams")


def aiokafka_kwargs(config: Config) -> dict[str, Any]:
    """aiokafka connection and security settings from ``config.kafka``."""
    k = config.kafka
    kwargs: dict[str, Any] = {"bootstrap_servers": k.bootstrap, "security_protocol": k.security_protocol}
    if k.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = ssl.create_default_context()
    if k.security_protocol.startswith("SASL"):
        from usr.kafka_client import client_kwargs

        ck = client_kwargs(k)   # validates the SASL settings and reads the password
        kwargs.update(sasl_mechanism=ck["sasl_mechanism"], sasl_plain_username=ck["sasl_plain_username"],
                      sasl_plain_password=ck["sasl_plain_password"])
    return kwargs


def _faust_credentials(config: Config) -> Any:
    k = config.kafka
    if k.security_protocol == "PLAINTEXT":
        return None
    if k.security_protocol == "SSL":
        return faust.SSLCredentials(ssl.create_default_context())
    kw = aiokafka_kwargs(config)
    return faust.SASLCredentials(username=kw["sasl_plain_username"], password=kw["sasl_plain_password"],
                                 mechanism=kw["sasl_mechanism"],
                                 ssl_context=kw.get("ssl_context"))


def ensure_stream_topics(config: Config) -> None:
    """The event topics, the dead-letter topic and the internal item topic, all with
    ``kafka.topics.partitions`` partitions."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from usr.kafka_client import client_kwargs

    t = config.kafka.topics
    names = [t.impressions, t.clicks, t.orders, t.dead_letter, internal_topic(config)]
    admin = KafkaAdminClient(request_timeout_ms=10_000, **client_kwargs(config.kafka))
    try:
        missing = [n for n in names if n not in set(admin.list_topics())]
        if missing:
            try:
                admin.create_topics([NewTopic(n, t.partitions, 1) for n in missing])
            except TopicAlreadyExistsError:
                pass
        for n in names:
            found = admin.describe_topics([n])[0]
            parts = len(found.get("partitions", []))
            if parts and parts != t.partitions and n != t.dead_letter:
                raise RuntimeError(f"topic {n} has {parts} partitions, the stream needs {t.partitions} "
                                   "(event topics and the internal topic must be co-partitioned)")
    finally:
        admin.close()


class Driver:
    """What both drivers share: the processor, a producer for dead letters and item
    records, per-partition arrival times for the idleness rule, and a step lock."""

    def __init__(self, config: Config, processor: Processor) -> None:
        self.config = config
        self.processor = processor
        self.producer: Any = None
        self.step_lock = asyncio.Lock()
        self.t_started = time.monotonic()
        self.last_message: dict[tuple[str, int], float] = {}
        self.n_steps = 0
        self.step_errors = 0

    async def start_producer(self) -> None:
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(acks="all", linger_ms=5, max_batch_size=1 << 20,
                                         max_request_size=8 << 20, **aiokafka_kwargs(self.config))
        await self.producer.start()

    async def stop_producer(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, topic: str, partition: int | None, key: bytes | None, value: bytes) -> Any:
        if self.producer is None:
            await self.start_producer()
        return await self.producer.send(topic, value=value, key=key, partition=partition)

    def highwater(self, topic: str, partition: int) -> int | None:
        raise NotImplementedError

    def idle(self, partition: int) -> set[int]:
        """Event topics of ``partition`` that are caught up and silent for idle_watermark_s."""
        idle_s = self.config.streams.idle_watermark_s
        if idle_s <= 0:
            return set()
        now = time.monotonic()
        out = set()
        state = self.processor.stage1.get(partition)
        if state is None:
            return out
        for kind, topic in self.processor.topic_of.items():
            hw = self.highwater(topic, partition)
            if hw is None or state[0].next_offset[kind] < hw:
                continue
            if now - self.last_message.get((topic, partition), self.t_started) >= idle_s:
                out.add(kind)
        return out

    async def step(self, records: list[tuple[str, int, int, bytes | None]],
                   flush: bool | None = None) -> dict[tuple[str, int], int]:
        now = time.monotonic()
        for topic, p, _, _ in records:
            self.last_message[(topic, p)] = now
        async with self.step_lock:
            offsets = await self.processor.step(records, self.send, self.idle, flush=flush)
        self.n_steps += 1
        return offsets


class DirectDriver(Driver, Service):
    """aiokafka getmany batches inside the Faust worker (see the module docstring)."""

    def __init__(self, config: Config, processor: Processor, **kwargs: Any) -> None:
        Driver.__init__(self, config, processor)
        Service.__init__(self, **kwargs)
        self.consumer: Any = None

    def highwater(self, topic: str, partition: int) -> int | None:
        from aiokafka import TopicPartition

        if self.consumer is None:
            return None
        try:
            return self.consumer.highwater(TopicPartition(topic, partition))
        except Exception:  # noqa: BLE001 - not assigned (any more)
            return None

    async def on_start(self) -> None:
        from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor

        s, k = self.config.streams, self.config.kafka
        driver = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: Any) -> None:
                async with driver.step_lock:
                    offsets = await asyncio.to_thread(driver.processor.flush)   # hand over a fresh checkpoint
                    await driver.commit(offsets)
                    driver.processor.revoke([(tp.topic, tp.partition) for tp in revoked])

            async def on_partitions_assigned(self, assigned: Any) -> None:
                async with driver.step_lock:
                    starts = await asyncio.to_thread(driver.processor.assign,
                                                     [(tp.topic, tp.partition) for tp in assigned])
                for (topic, p), offset in starts.items():
                    driver.consumer.seek(TopicPartition(topic, p), offset)
                log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))

        await self.start_producer()
        self.consumer = AIOKafkaConsumer(
            group_id=s.app_id, enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=k.session_timeout_ms, heartbeat_interval_ms=k.heartbeat_interval_ms,
            max_poll_interval_ms=300_000, max_partition_fetch_bytes=4 << 20, fetch_max_bytes=32 << 20,
            fetch_max_wait_ms=50,   # a quiet partition answers fast: freshness, and the item records' round trip
            **aiokafka_kwargs(self.config))
        await self.consumer.start()
        self.consumer.subscribe(stream_topics(self.config), listener=Listener())

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        await self.stop_producer()

    @Service.task
    async def _consume(self) -> None:
        s = self.config.streams
        timeout_ms = int(s.flush_interval_s * 1000)
        while not self.should_stop:
            batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=s.max_batch_events)
            records = [(tp.topic, tp.partition, m.offset, m.value) for tp, msgs in batches.items() for m in msgs]
            try:
                offsets = await self.step(records)
            except Exception:
                self.step_errors += 1
                log.exception("processing step failed; the worker stops (its partitions restart from the checkpoint)")
                os._exit(3)
            await self.commit(offsets)

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit checkpointed offsets to the group (informational: lag; the start of a
        partition without a checkpoint). The checkpoints decide where reading resumes."""
        from aiokafka.structs import OffsetAndMetadata, TopicPartition

        assigned = self.consumer.assignment()
        commit = {TopicPartition(t, p): OffsetAndMetadata(o, "") for (t, p), o in offsets.items()
                  if TopicPartition(t, p) in assigned}
        if commit:
            try:
                await self.consumer.commit(commit)
            except Exception as exc:  # noqa: BLE001 - a rebalance in between; the checkpoint is what counts
                log.warning("offset commit skipped: %s", exc)


class FaustDriver(Driver):
    """Faust agents drive consumption (see the module docstring)."""

    def __init__(self, config: Config, processor: Processor, app: faust.App) -> None:
        super().__init__(config, processor)
        self.app = app

    def highwater(self, topic: str, partition: int) -> int | None:
        from faust.types import TP

        try:
            return self.app.consumer.highwater(TP(topic, partition))
        except Exception:  # noqa: BLE001
            return None


def make_app(config: Config, index: int, processor: Processor) -> tuple[faust.App, Driver]:
    """The worker's Faust app (web port ``web_port_base + index``) and its driver."""
    s, k = config.streams, config.kafka
    driver_kind = s.driver
    datadir = config.run.dir / "streams" / "faust" / f"worker-{index}"
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        s.app_id if driver_kind == "faust" else f"{s.app_id}-host",
        broker=[f"kafka://{h}" for h in k.bootstrap.split(",")],
        broker_credentials=_faust_credentials(config),
        value_serializer="raw", key_serializer="raw",
        topic_partitions=k.topics.partitions,
        broker_session_timeout=k.session_timeout_ms / 1000.0,
        broker_heartbeat_interval=k.heartbeat_interval_ms / 1000.0,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=s.max_batch_events,
        stream_buffer_maxsize=max(4 * s.batch_size, 4096),
        producer_acks=-1,
        web_enabled=True, web_host="127.0.0.1", web_bind="127.0.0.1", web_port=s.web_port_base + index,
        web_in_thread=False,
        datadir=str(datadir),
        store="memory://",
        table_cleanup_interval=3600.0,
    )
    driver: Driver
    if driver_kind == "faust":
        driver = FaustDriver(config, processor, app)
        topics = app.topic(*stream_topics(config), value_type=bytes, key_type=bytes,
                           value_serializer="raw", key_serializer="raw", partitions=k.topics.partitions)

        @app.agent(topics, name="streams.step")
        async def step_agent(stream: Any) -> None:  # noqa: ANN401
            async for events in stream.take_events(s.batch_size, within=s.flush_interval_s):
                # a batch can still hold messages of partitions revoked meanwhile: leave them
                # to their new owner instead of reloading (and re-claiming) their state
                owned = app.consumer.assignment()
                records = [(e.message.topic, e.message.partition, e.message.offset, e.message.value) for e in events
                           if e.message.tp in owned]
                try:
                    # Faust acks the batch when this returns: checkpoint it first
                    await driver.step(records, flush=True)
                except Exception:
                    log.exception("processing step failed; the worker stops (its partitions restart from the checkpoint)")
                    os._exit(3)

        @app.timer(interval=max(s.flush_interval_s * 5, 1.0))
        async def idle_step() -> None:
            if s.idle_watermark_s > 0 and processor.stage1:
                await driver.step([], flush=True)

        @app.on_partitions_revoked.connect
        async def on_revoked(sender: Any, revoked: Any, **_: Any) -> None:  # noqa: ANN401
            async with driver.step_lock:
                processor.revoke([(tp.topic, tp.partition) for tp in revoked])

    else:
        direct = DirectDriver(config, processor, loop=None)
        driver = direct
        app.service(direct)

    @app.page("/status")
    async def status(web: Any, request: Any) -> Any:  # noqa: ANN401
        return web.json({"driver": driver_kind, "index": index, "steps": driver.n_steps, **processor.status()})

    return app, driver
