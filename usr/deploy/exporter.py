"""Prometheus exporter of the stream jobs' progress, read from Kafka itself:

* ``usr_streams_consumer_lag{topic,partition}``: end offset minus the offset the stream
  workers' consumer group (``streams.app_id``) committed. The workers commit only what
  their checkpoints hold, so this counts events not yet in the online features.
* ``usr_streams_staleness_seconds{topic,partition}``: feature freshness; how old the
  oldest event not yet processed is (now minus its Kafka timestamp), 0 when caught up.
  Online features reflect every event before it, so this bounds their staleness.
* ``usr_streams_end_offset`` / ``usr_streams_committed_offset``: the raw offsets.
* with ``--retrain-textfile``: the metrics the last ``usr retrain`` run wrote to
  ``<registry>/retrain.prom`` (a Kubernetes CronJob cannot be scraped itself).

    usr deploy exporter [--port 8700] [--interval 15] [--retrain-textfile]

The values are computed in a background thread every ``--interval`` seconds (a scrape
never waits for Kafka); ``usr_exporter_last_success_timestamp_seconds`` tells how fresh
they are, ``usr_exporter_errors_total`` counts failed rounds.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from usr.config import Config

LOG = logging.getLogger("usr.deploy.exporter")


@dataclass
class PartitionProgress:
    topic: str
    partition: int
    end: int
    committed: int | None      # None: the group never committed on this partition
    begin: int
    oldest_pending_ts_ms: int | None = None

    @property
    def lag(self) -> int:
        start = self.committed if self.committed is not None else self.begin
        return max(0, self.end - start)

    def staleness_s(self, now_ms: int) -> float:
        if self.lag == 0 or self.oldest_pending_ts_ms is None:
            return 0.0
        return max(0.0, (now_ms - self.oldest_pending_ts_ms) / 1000.0)


@dataclass
class Snapshot:
    partitions: list[PartitionProgress] = field(default_factory=list)
    taken_at: float = 0.0


def stream_input_topics(config: Config) -> list[str]:
    t = config.kafka.topics
    return [t.impressions, t.clicks, t.orders]


def measure(config: Config, group_id: str | None = None, topics: list[str] | None = None,
            timeout_s: float = 5.0) -> Snapshot:
    """One round: offsets of every partition of ``topics`` and the timestamp of the first
    uncommitted event of each lagging partition."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient

    from usr.kafka_client import client_kwargs

    group_id = group_id or config.streams.app_id
    topics = topics or stream_input_topics(config)
    kwargs = client_kwargs(config.kafka)
    admin = KafkaAdminClient(request_timeout_ms=int(timeout_s * 1000), **kwargs)
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, request_timeout_ms=int(timeout_s * 1000) + 1000,
                             consumer_timeout_ms=int(timeout_s * 1000), **kwargs)
    try:
        committed = {tp: om.offset for tp, om in _group_offsets(admin, group_id).items()
                     if om is not None and om.offset is not None and om.offset >= 0}
        tps = []
        for topic in topics:
            for p in sorted(consumer.partitions_for_topic(topic) or ()):
                tps.append(TopicPartition(topic, p))
        if not tps:
            return Snapshot([], time.time())
        ends = consumer.end_offsets(tps)
        begins = consumer.beginning_offsets(tps)
        progress = {tp: PartitionProgress(tp.topic, tp.partition, ends[tp], committed.get(tp), begins[tp])
                    for tp in tps}
        lagging = [tp for tp, pp in progress.items() if pp.lag > 0]
        if lagging:
            consumer.assign(lagging)
            for tp in lagging:
                pp = progress[tp]
                consumer.seek(tp, pp.committed if pp.committed is not None else pp.begin)
            missing = set(lagging)
            deadline = time.monotonic() + timeout_s
            while missing and time.monotonic() < deadline:
                for tp, records in consumer.poll(timeout_ms=200, max_records=500).items():
                    if tp in missing and records:
                        progress[tp].oldest_pending_ts_ms = records[0].timestamp
                        missing.discard(tp)
                        consumer.pause(tp)
        return Snapshot(list(progress.values()), time.time())
    finally:
        consumer.close()
        admin.close()


def _group_offsets(admin, group_id: str) -> dict:
    """Committed offsets of a consumer group (kafka-python 3: list_group_offsets; 2.x: list_consumer_group_offsets)."""
    if hasattr(admin, "list_group_offsets"):
        return admin.list_group_offsets({group_id: None}).get(group_id) or {}
    return admin.list_consumer_group_offsets(group_id)


class StreamProgressCollector:
    """Serves the latest :class:`Snapshot` (and the retrain textfile) at scrape time."""

    def __init__(self, retrain_textfile: Path | None = None) -> None:
        self.snapshot = Snapshot()
        self.retrain_textfile = retrain_textfile
        self._lock = threading.Lock()

    def update(self, snapshot: Snapshot) -> None:
        with self._lock:
            self.snapshot = snapshot

    def collect(self):
        with self._lock:
            snap = self.snapshot
        labels = ["topic", "partition"]
        lag = GaugeMetricFamily("usr_streams_consumer_lag", "Events not yet committed by the stream workers", labels=labels)
        stale = GaugeMetricFamily("usr_streams_staleness_seconds",
                                  "Age of the oldest event not yet processed (0: caught up)", labels=labels)
        end = GaugeMetricFamily("usr_streams_end_offset", "End offset of the partition", labels=labels)
        committed = GaugeMetricFamily("usr_streams_committed_offset", "Offset committed by the stream workers",
                                      labels=labels)
        now_ms = int(time.time() * 1000)
        for pp in snap.partitions:
            key = [pp.topic, str(pp.partition)]
            lag.add_metric(key, pp.lag)
            stale.add_metric(key, pp.staleness_s(now_ms))
            end.add_metric(key, pp.end)
            if pp.committed is not None:
                committed.add_metric(key, pp.committed)
        yield from (lag, stale, end, committed)
        if self.retrain_textfile is not None:
            try:
                text = self.retrain_textfile.read_text()
            except OSError:
                return
            yield from text_string_to_metric_families(text)


class Exporter:
    def __init__(self, config: Config, interval_s: float = 15.0, retrain_textfile: Path | None = None) -> None:
        self.config = config
        self.interval_s = interval_s
        self.registry = CollectorRegistry()
        self.collector = StreamProgressCollector(retrain_textfile)
        self.registry.register(self.collector)
        self.last_success = Gauge("usr_exporter_last_success_timestamp_seconds",
                                  "When the exporter last read Kafka successfully", registry=self.registry)
        self.errors = Counter("usr_exporter_errors", "Rounds that failed to read Kafka", registry=self.registry)
        self.stop = threading.Event()

    def round(self) -> bool:
        try:
            snap = measure(self.config)
        except Exception as exc:  # noqa: BLE001 - Kafka away: keep serving the last values, count it
            self.errors.inc()
            LOG.warning("exporter round failed: %s: %s", type(exc).__name__, exc)
            return False
        self.collector.update(snap)
        self.last_success.set(snap.taken_at)
        return True

    def run_forever(self) -> None:
        while not self.stop.is_set():
            self.round()
            self.stop.wait(self.interval_s)


def retrain_textfile(config: Config) -> Path:
    """Where ``usr retrain`` writes its metrics (model/retrain_metrics.py)."""
    return (config.retrain.registry_dir or (config.run.dir / "registry")) / "retrain.prom"


def serve(config: Config, port: int, interval_s: float = 15.0, with_retrain: bool = False,
          host: str = "0.0.0.0") -> int:
    import signal

    from prometheus_client import start_http_server

    exporter = Exporter(config, interval_s, retrain_textfile(config) if with_retrain else None)
    server, _ = start_http_server(port, addr=host, registry=exporter.registry)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: exporter.stop.set())
    LOG.info("exporter on %s:%d (group %s, every %.0fs)", host, port, config.streams.app_id, interval_s)
    try:
        exporter.run_forever()
    finally:
        server.shutdown()
    return 0
