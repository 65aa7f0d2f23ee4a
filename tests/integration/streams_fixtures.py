"""Helpers for the stream-job integration tests: an isolated configuration per test
(own topics, consumer group, run directory with its own Feast registry, online store and
offline store; the session's Kafka broker), worker processes, and readers of what the
workers produced (rows, online features, dead letters)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq

from tests.conftest import free_ports, stack_config
from usr.config import Config

ROOT = Path(__file__).resolve().parents[2]


def streams_config(stack: Config, run_dir: Path, **env: str) -> Config:
    """A configuration for one test: the session's broker, unique topics and app id."""
    tag = uuid.uuid4().hex[:8]
    base = {
        "USR__KAFKA__MODE": "external", "USR__KAFKA__BOOTSTRAP_SERVERS": stack.kafka.bootstrap,
        "USR__KAFKA__TOPICS__IMPRESSIONS": f"t{tag}.impressions", "USR__KAFKA__TOPICS__CLICKS": f"t{tag}.clicks",
        "USR__KAFKA__TOPICS__ORDERS": f"t{tag}.orders", "USR__KAFKA__TOPICS__DEAD_LETTER": f"t{tag}.dead-letter",
        "USR__KAFKA__TOPICS__PARTITIONS": "4",
        "USR__STREAMS__APP_ID": f"streams-{tag}", "USR__STREAMS__WEB_PORT_BASE": str(free_ports(1)[0]),
        "USR__STREAMS__WORKERS": "0", "USR__GATEWAY__ENABLED": "false",
        "USR__TRITON__MODE": "external", "USR__TRITON__GRPC_PORT": str(stack.triton.grpc_port),
        # the simulated log is days old: nothing is "idle" before its end-of-log markers
        "USR__STREAMS__IDLE_WATERMARK_S": "0",
    }
    base.update(env)
    return stack_config(run_dir, **base)


def prepare(config: Config, sim_dir: Path) -> None:
    """Feast definitions, topics and the catalog, before any worker starts."""
    from features.store import apply_definitions
    from streams.app import ensure_stream_topics
    from streams.catalog import install

    apply_definitions(config)
    ensure_stream_topics(config)
    install(config, sim_dir)


class Worker:
    """A ``python -m streams.worker`` process (the same command line the stack uses)."""

    def __init__(self, config: Config, index: int) -> None:
        from streams.service import worker_argv

        self.config, self.index = config, index
        self.port = config.streams.web_port_base + index
        log_dir = config.run.dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"streams-{index}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(worker_argv(config, index), cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)

    def status(self) -> dict[str, Any] | None:
        from streams.progress import worker_status

        return worker_status(self.port)

    def wait_ready(self, timeout_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker {self.index} exited:\n{self.tail()}"
            st = self.status()
            if st is not None:
                return st
            time.sleep(0.2)
        raise TimeoutError(f"worker {self.index} did not answer in {timeout_s}s:\n{self.tail()}")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()

    def tail(self, n: int = 40) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


@contextmanager
def workers(config: Config, n: int) -> Iterator[list[Worker]]:
    started = [Worker(config, i) for i in range(n)]
    try:
        yield started
    finally:
        for w in started:
            w.stop()


def wait_done(config: Config, ws: list[Worker], timeout_s: float = 180.0) -> list[dict]:
    from streams.progress import wait_caught_up

    try:
        return wait_caught_up(config, [w.port for w in ws], timeout_s=timeout_s)
    except TimeoutError:
        raise AssertionError("\n\n".join(f"worker {w.index}:\n{w.tail()}" for w in ws)) from None


def reference(config: Config, sim_dir: Path, log=None):
    from streams import offline
    from streams.catalog import load_installed
    from streams.item_state import Smoothing
    from streams.state import StateConfig

    log = pq.read_table(sim_dir / "events.parquet") if log is None else log
    return offline.compute(log, load_installed(config), StateConfig.from_streams(config.streams),
                           config.kafka.topics.partitions, Smoothing.from_streams(config.streams))


def read_online(config: Config, ref) -> dict[str, dict]:
    """What the online store holds for the reference's users, items and query-items,
    in the reference's shape (read through Feast, the gateway's path)."""
    from features.store import open_store

    store = open_store(config)
    users, items, qitems = sorted(ref.users), sorted(ref.items), sorted(ref.query_items)
    out: dict[str, dict] = {"users": {}, "items": {}, "query_items": {}}
    hist = ["hist_item_id", "hist_cate2", "hist_brand", "hist_source", "hist_action", "hist_query", "hist_ts"]
    got = store.get_online_features(
        features=[f"user_history:{f}" for f in hist] + ["user_counters:counts_1h", "user_counters:counts_1d",
                                                        "user_counters:counts_as_of"],
        entity_rows=[{"user_id": u} for u in users]).to_dict()
    for j, u in enumerate(users):
        # a user who never clicked has no user_history row: the gateway reads that as empty lists
        out["users"][u] = {f: list(got[f][j] or []) for f in hist}
        for f in ("counts_1h", "counts_1d"):
            out["users"][u][f] = list(got[f][j]) if got[f][j] is not None else None
        out["users"][u]["counts_as_of"] = got["counts_as_of"][j]
    got = store.get_online_features(features=["item_stats:counts", "item_stats:rates", "item_popularity:ctr"],
                                    entity_rows=[{"item_id": i} for i in items]).to_dict()
    for j, i in enumerate(items):
        out["items"][i] = {"counts": list(got["counts"][j] or []), "rates": list(got["rates"][j] or []),
                           "ctr": got["ctr"][j]}
    got = store.get_online_features(features=["query_item_stats:counts", "query_item_stats:ctr"],
                                    entity_rows=[{"query": q, "item_id": i} for q, i in qitems]).to_dict()
    for j, key in enumerate(qitems):
        out["query_items"][key] = {"counts": list(got["counts"][j] or []), "ctr": got["ctr"][j]}
    return out


def _close(a: Any, b: Any) -> bool:
    if isinstance(b, float):
        return a is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b))
    if isinstance(b, list) and b and isinstance(b[0], float):
        return a is not None and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def assert_online_equals(config: Config, ref) -> None:
    got = read_online(config, ref)
    for what, want in (("users", ref.users), ("items", ref.items), ("query_items", ref.query_items)):
        bad = []
        for key, f in want.items():
            g = got[what][key]
            diff = {k: (g[k], f[k]) for k in g if not _close(g[k], f[k])}
            if diff:
                bad.append((key, diff))
        assert not bad, f"{len(bad)} of {len(want)} {what} differ from the batch reference, e.g. {bad[:2]}"


def assert_rows_equal(config: Config, ref) -> None:
    from features.store import offline_dir
    from streams.sink_offline import read_rows
    from tests.unit.streams_harness import assert_same_rows

    assert_same_rows(read_rows(offline_dir(config)), ref.rows)


def dead_letters(config: Config, timeout_s: float = 10.0) -> dict[str, dict]:
    """The dead-letter topic, keyed by the rejected message's topic:partition:offset."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(config.kafka.topics.dead_letter, bootstrap_servers=config.kafka.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=int(timeout_s * 1000),
                             group_id=None)
    try:
        return {m.key.decode(): json.loads(m.value) for m in consumer}
    finally:
        consumer.close()
