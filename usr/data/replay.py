"""Publish an event log (``events.parquet``, EVENT_LOG_SCHEMA) to Kafka in time order.

Each row becomes one JSON event (:func:`usr.data.events.encode_event`) on the topic of
its type, keyed by user id, so one user's events stay in order within a partition.
Rows are validated first (``validate=True``): an invalid row is not published but
counted and reported with its reason. Pacing: as fast as possible, or ``rate`` events
per second on average (the schedule is kept against a monotonic clock, so short stalls
are caught up). The producer is anything with kafka-python's ``send``/``flush``/``close``.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import pyarrow.parquet as pq
from tqdm import tqdm

from usr.data.events import EventValidationError, encode_event, event_key, topic_for, validate_event


class Producer(Protocol):
    """The part of ``kafka.KafkaProducer`` the replay uses."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
             timestamp_ms: int | None = None) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...


@dataclass
class ReplaySummary:
    events: int = 0                     # events handed to the producer
    seconds: float = 0.0
    events_per_s: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)
    invalid: int = 0                    # rows that failed validation (not published)
    invalid_examples: list[str] = field(default_factory=list)
    failed: int = 0                     # sends the producer reported as failed
    target_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def events_file(path: str | Path) -> Path:
    """``DIR/events.parquet`` for a simulator directory, or the file itself."""
    p = Path(path)
    return p / "events.parquet" if p.is_dir() else p


def iter_rows(path: str | Path, limit: int | None = None, batch_rows: int = 65_536) -> Iterator[dict[str, Any]]:
    """Rows of the event log as dicts, in file order (the log is time-ordered)."""
    pf = pq.ParquetFile(events_file(path))
    n = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            if limit is not None and n >= limit:
                return
            n += 1
            yield row


def count_rows(path: str | Path) -> int:
    return pq.ParquetFile(events_file(path)).metadata.num_rows


def _wire_dict(row: dict[str, Any]) -> dict[str, Any]:
    d = dict(row)
    if d.get("scenario") == "rec" and not d.get("query"):
        d.pop("query", None)
    return d


def replay(path: str | Path, producer: Producer, topics: Any, rate: float | None = None,
           limit: int | None = None, validate: bool = True, event_time: bool = False,
           progress: bool = True, clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> ReplaySummary:
    """Send the log's events to ``topics`` (``config.kafka.topics``); returns a summary.

    ``event_time``: stamp each message with the event's ``ts`` (Kafka's time-based
    retention then treats an old log as expired; off by default).
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0 events per second")
    total = count_rows(path) if limit is None else min(limit, count_rows(path))
    summary = ReplaySummary(target_rate=rate)

    def failed(_exc: BaseException) -> None:
        summary.failed += 1

    bar = tqdm(total=total, unit="ev", desc="replay", disable=not progress, file=sys.stderr, mininterval=0.5)
    start = clock()
    sent_since_bar = 0
    for i, row in enumerate(iter_rows(path, limit)):
        if rate is not None:
            due = start + i / rate
            now = clock()
            if due > now:
                sleep(due - now)
        wire = _wire_dict(row)
        try:
            if validate:
                ev = validate_event(wire)
                value, key, etype, ts = encode_event(ev), event_key(ev), ev.event_type, ev.ts
            else:
                value, key, etype, ts = encode_event(wire), event_key(wire), str(wire.get("event_type")), wire.get("ts")
            topic = topic_for(etype, topics)
        except (EventValidationError, KeyError, TypeError, ValueError) as exc:
            summary.invalid += 1
            if len(summary.invalid_examples) < 5:
                summary.invalid_examples.append(f"row {i}: {exc}")
            continue
        fut = producer.send(topic, value=value, key=key, timestamp_ms=int(ts) if event_time else None)
        if hasattr(fut, "add_errback"):
            fut.add_errback(failed)
        summary.events += 1
        summary.by_type[etype] = summary.by_type.get(etype, 0) + 1
        sent_since_bar += 1
        if sent_since_bar >= 2048:
            bar.update(sent_since_bar)
            sent_since_bar = 0
    producer.flush()
    bar.update(sent_since_bar)
    bar.close()
    summary.seconds = round(clock() - start, 6)
    summary.events_per_s = round(summary.events / summary.seconds, 1) if summary.seconds > 0 else float("inf")
    return summary


def make_kafka_producer(kafka: Any, acks: str | int = 1, linger_ms: int = 5) -> Any:
    """A kafka-python producer for ``config.kafka`` (bootstrap, security settings)."""
    import os

    from kafka import KafkaProducer

    kwargs: dict[str, Any] = dict(
        bootstrap_servers=kafka.bootstrap.split(","),
        acks=acks if acks == "all" else int(acks),
        linger_ms=linger_ms,
        batch_size=256 * 1024,
        security_protocol=kafka.security_protocol,
    )
    if kafka.sasl_mechanism:
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism
        kwargs["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password_env:
            kwargs["sasl_plain_password"] = os.environ.get(kafka.sasl_password_env, "")
    return KafkaProducer(**kwargs)
