"""Stream jobs: events per second per worker from Kafka to the online store, and feature
freshness (event time to readable online, p50/p99), each beside a naive path measured in
the same run: one Feast push per event (``FeatureStore.push``, the same per-user state
kept in a dict).

What runs: a local Apache Kafka broker (temporary directory), a simulated log, the Feast
SQLite online store (the stack's default), and ``python -m streams.worker`` processes.

* throughput: the whole log (plus end-of-log markers) is published first, then one worker
  reads it; events/s = log events / (last step - first step), and per CPU second of the
  worker process (all its threads). Both drivers (direct, faust) and the naive consumer
  (on the first ``--naive-events`` events).
* freshness: live traffic at ``--rate`` events/s for ``--seconds`` (impressions of
  simulated users, and every ``1/probe-share``-th event a click of a probe user, stamped
  with the wall clock when produced); a reader polls ``user_history:hist_ts`` of the
  probe users through ``get_online_features`` and records when each click is readable.

Prints one JSON object. Run: ``.venv/bin/python bench/bench_streams.py [--quick]``
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def percentiles(ms: list[float]) -> dict[str, Any]:
    if not ms:
        return {"n": 0}
    a = np.array(ms)
    return {"n": len(ms), "p50_ms": round(float(np.percentile(a, 50)), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
            "max_ms": round(float(a.max()), 1)}


class Broker:
    """A throwaway Apache Kafka (KRaft) broker."""

    def __init__(self, run_dir: Path) -> None:
        from usr.config import load_config
        from usr.kafka_client import broker_answers
        from usr.stack.kafka_broker import start_apache
        from usr.stack.process import RunPaths

        k, kc = free_ports(2)
        self.config = load_config(environ={"USR__RUN__DIR": str(run_dir), "USR__KAFKA__PORT": str(k),
                                           "USR__KAFKA__CONTROLLER_PORT": str(kc),
                                           "USR__RUN__CACHE_DIR": str(ROOT / ".cache")})
        self.paths = RunPaths(run_dir).ensure()
        start_apache(self.config, self.paths, "kafka")
        deadline = time.monotonic() + 120
        while not broker_answers(self.config.kafka)[0]:
            if time.monotonic() > deadline:
                raise RuntimeError("Kafka did not start")
            time.sleep(0.5)

    def stop(self) -> None:
        from usr.stack.process import stop

        stop(self.paths, "kafka")


def scenario_config(broker: Broker, run_dir: Path, **env: str):
    from usr.config import load_config

    tag = uuid.uuid4().hex[:6]
    base = {
        "USR__RUN__DIR": str(run_dir), "USR__KAFKA__MODE": "external",
        "USR__KAFKA__BOOTSTRAP_SERVERS": broker.config.kafka.bootstrap,
        "USR__KAFKA__TOPICS__IMPRESSIONS": f"b{tag}.imp", "USR__KAFKA__TOPICS__CLICKS": f"b{tag}.clk",
        "USR__KAFKA__TOPICS__ORDERS": f"b{tag}.ord", "USR__KAFKA__TOPICS__DEAD_LETTER": f"b{tag}.dlq",
        "USR__STREAMS__APP_ID": f"bench-{tag}", "USR__STREAMS__WEB_PORT_BASE": str(free_ports(1)[0]),
        "USR__STREAMS__IDLE_WATERMARK_S": "0",
    }
    base.update(env)
    return load_config(environ=base)


def prepare(config, sim_dir: Path) -> None:
    from features.store import apply_definitions
    from streams.app import ensure_stream_topics
    from streams.catalog import install

    apply_definitions(config)
    ensure_stream_topics(config)
    install(config, sim_dir)


def start_worker(config, index: int = 0) -> subprocess.Popen:
    from streams.service import worker_argv

    log = open(config.run.dir / f"worker-{index}.log", "wb")
    return subprocess.Popen(worker_argv(config, index), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- throughput

def stream_throughput(broker: Broker, sim_dir: Path, work: Path, driver: str, n_events: int) -> dict[str, Any]:
    from streams.progress import wait_caught_up
    from streams.publish import publish_log

    config = scenario_config(broker, work / f"tp-{driver}", USR__STREAMS__DRIVER=driver)
    prepare(config, sim_dir)
    t0 = time.perf_counter()
    publish_log(config, sim_dir)
    publish_s = time.perf_counter() - t0
    proc = start_worker(config)
    try:
        st = wait_caught_up(config, [config.streams.web_port_base], timeout_s=900, settle_s=0.5)[0]
    finally:
        stop_worker(proc)
    win = st["busy_window"]
    wall = win["t_last"] - win["t_first"]
    return {
        "driver": driver, "log_events": n_events, "messages_read": st["events"],
        "wall_s": round(wall, 2), "worker_cpu_s": win["cpu_s"],
        "events_per_s": round(n_events / wall, 1), "events_per_cpu_s": round(n_events / max(win["cpu_s"], 1e-9), 1),
        "publish_events_per_s": round(n_events / publish_s, 1),
        "phase_s": st["timings_s"], "online_rows_written": st["feast_rows"],
    }


class NaiveConsumer:
    """One Feast push per event: the same validation and per-user state (counters in a
    dict, the last clicks), then ``store.push`` of the user's row to the online store."""

    def __init__(self, config, group: str) -> None:
        from kafka import KafkaConsumer

        from features.store import open_store
        from streams.catalog import load_installed

        self.config = config
        self.store = open_store(config)
        self.catalog = load_installed(config)
        t = config.kafka.topics
        self.consumer = KafkaConsumer(t.impressions, t.clicks, t.orders, bootstrap_servers=config.kafka.bootstrap,
                                      group_id=group, auto_offset_reset="earliest", enable_auto_commit=True)
        self.counts: dict[int, list[int]] = {}
        self.clicks: dict[int, list[tuple[int, int, int, str]]] = {}
        self.buffer: list[Any] = []
        self.done = 0
        self.stop = False

    def handle(self, raw: bytes) -> None:
        import pandas as pd

        from usr.data.events import EventValidationError, validate_event

        try:
            ev = validate_event(raw)
        except EventValidationError:
            return
        now = pd.Timestamp(ev.ts, unit="ms", tz="UTC")
        if ev.event_type == "click":
            lst = self.clicks.setdefault(ev.user_id, [])
            lst.append((ev.ts, ev.item_id, 1 if ev.scenario == "search" else 2, ev.query))
            lst.sort()
            del lst[:-50]
            h = lst[::-1]
            attrs = [self.catalog.item_attrs(i) for _, i, _, _ in h]
            self.store.push("user_history_push", pd.DataFrame({
                "user_id": [ev.user_id], "hist_item_id": [[x[1] for x in h]], "hist_cate2": [[a[1] for a in attrs]],
                "hist_brand": [[a[2] for a in attrs]], "hist_source": [[x[2] for x in h]],
                "hist_action": [[1] * len(h)], "hist_query": [[x[3] for x in h]], "hist_ts": [[x[0] for x in h]],
                "event_timestamp": [now]}))
        else:
            c = self.counts.setdefault(ev.user_id, [0] * 9)
            c[(0 if ev.scenario == "search" else 3) + (0 if ev.event_type == "impression" else 2)] += 1
            self.store.push("user_counters_push", pd.DataFrame({
                "user_id": [ev.user_id], "counts_1h": [c], "counts_1d": [c], "counts_as_of": [ev.ts],
                "event_timestamp": [now]}))
        self.done += 1

    def run(self, limit: int | None = None, timeout_s: float = 600.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.stop and (limit is None or self.done < limit) and time.monotonic() < deadline:
            if not self.buffer:
                self.buffer = [m for msgs in self.consumer.poll(timeout_ms=100, max_records=200).values() for m in msgs]
            while self.buffer and (limit is None or self.done < limit):
                m = self.buffer.pop(0)
                if m.key != b"__watermark__":
                    self.handle(m.value)


def naive_throughput(broker: Broker, sim_dir: Path, work: Path, n: int) -> dict[str, Any]:
    from usr.data.replay import make_kafka_producer, replay

    config = scenario_config(broker, work / "tp-naive")
    prepare(config, sim_dir)
    producer = make_kafka_producer(config.kafka, acks="all")
    replay(sim_dir, producer, config.kafka.topics, limit=n, progress=False)
    producer.close()
    naive = NaiveConsumer(config, f"naive-{uuid.uuid4().hex[:6]}")
    naive.run(limit=20)                 # connect, join, first pushes
    t0, c0 = time.perf_counter(), time.process_time()
    naive.run(limit=n)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    naive.consumer.close()
    done = naive.done - 20
    return {"path": "one Feast push per event", "events": done, "wall_s": round(wall, 2),
            "events_per_s": round(done / wall, 1), "events_per_cpu_s": round(done / max(cpu, 1e-9), 1)}


# ---------------------------------------------------------------- freshness

class LiveTraffic:
    """Impressions of simulated users at ``rate`` events/s, a probe click every
    ``probe_every`` events; remembers when each probe was stamped."""

    def __init__(self, config, users: list[int], items: list[int], rate: float, seconds: float,
                 probe_every: int) -> None:
        from usr.data.events import encode_event
        from usr.data.replay import make_kafka_producer

        self.config, self.rate, self.seconds, self.probe_every = config, rate, seconds, probe_every
        self.encode = encode_event
        self.producer = make_kafka_producer(config.kafka, acks=1, linger_ms=2)
        self.users, self.items = users, items
        self.probes: dict[int, int] = {}          # probe user -> ts of its latest click
        self.pending: dict[int, int] = {}         # probe user -> ts not yet seen online
        self.lock = threading.Lock()
        self.sent = 0

    def run(self) -> None:
        t = self.config.kafka.topics
        rng = random.Random(1)
        start = time.monotonic()
        n = 0
        probe_users = self.users[: max(1, len(self.users) // 4)]
        background = self.users[len(probe_users):]
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= self.seconds:
                break
            due = int(elapsed * self.rate)
            while n < due:
                ts = int(time.time() * 1000)
                if n % self.probe_every == 0:
                    with self.lock:
                        free = [u for u in probe_users if u not in self.pending]
                    if free:
                        user = rng.choice(free)
                        d = {"event_type": "click", "event_id": f"p{n}-{uuid.uuid4().hex[:6]}", "request_id": f"pr{n}",
                             "user_id": user, "item_id": rng.choice(self.items), "scenario": "rec", "position": 0,
                             "ts": ts, "schema_version": 1}
                        self.producer.send(t.clicks, key=str(user).encode(), value=self.encode(d))
                        with self.lock:
                            self.pending[user] = ts
                        n += 1
                        continue
                user = rng.choice(background)
                d = {"event_type": "impression", "event_id": f"i{n}-{uuid.uuid4().hex[:6]}", "request_id": f"r{n // 10}",
                     "user_id": user, "item_id": rng.choice(self.items), "scenario": "rec", "position": n % 10,
                     "ts": ts, "schema_version": 1}
                self.producer.send(t.impressions, key=str(user).encode(), value=self.encode(d))
                n += 1
            time.sleep(0.002)
        self.producer.flush()
        self.sent = n


def measure_freshness(config, traffic: LiveTraffic, drain_s: float = 10.0) -> dict[str, Any]:
    """Run the traffic and poll the online store until every probe click is readable."""
    from features.store import open_store

    store = open_store(config)
    latencies: list[float] = []
    thread = threading.Thread(target=traffic.run, daemon=True)
    thread.start()
    end = None
    while True:
        with traffic.lock:
            waiting = dict(traffic.pending)
        if waiting:
            users = sorted(waiting)
            got = store.get_online_features(features=["user_history:hist_ts"],
                                            entity_rows=[{"user_id": u} for u in users]).to_dict()["hist_ts"]
            now = time.time() * 1000
            with traffic.lock:
                for u, hist in zip(users, got):
                    if hist and hist[0] >= waiting[u] and traffic.pending.get(u) == waiting[u]:
                        latencies.append(now - waiting[u])
                        del traffic.pending[u]
        if not thread.is_alive():
            end = end or time.monotonic()
            if not traffic.pending or time.monotonic() - end > drain_s:
                break
        time.sleep(0.005)
    thread.join()
    unseen = len(traffic.pending)
    out = {"events_sent": traffic.sent, "probes_unseen_after_drain": unseen, **percentiles(latencies)}
    return out


def freshness_pair(broker: Broker, sim_dir: Path, work: Path, rate: float, seconds: float,
                   probe_every: int) -> dict[str, Any]:
    import pyarrow.parquet as pq

    users = pq.read_table(sim_dir / "users.parquet", columns=["user_id"]).column(0).to_pylist()[:2000]
    items = pq.read_table(sim_dir / "items.parquet", columns=["item_id"]).column(0).to_pylist()
    out: dict[str, Any] = {"rate_events_per_s": rate, "seconds": seconds}
    # the stream worker (direct driver, the stack's defaults: flush every 0.2 s)
    config = scenario_config(broker, work / f"fr-stream-{int(rate)}", USR__STREAMS__IDLE_WATERMARK_S="10")
    prepare(config, sim_dir)
    proc = start_worker(config)
    try:
        from streams.progress import worker_status

        deadline = time.monotonic() + 60
        while (worker_status(config.streams.web_port_base) or {}).get("stage1") in (None, {}):
            if time.monotonic() > deadline:
                raise RuntimeError("worker did not get its partitions")
            time.sleep(0.2)
        time.sleep(1.0)
        out["stream"] = measure_freshness(config, LiveTraffic(config, users, items, rate, seconds, probe_every))
    finally:
        stop_worker(proc)
    # the naive path at the same rate
    config = scenario_config(broker, work / f"fr-naive-{int(rate)}")
    prepare(config, sim_dir)
    naive = NaiveConsumer(config, f"naive-{uuid.uuid4().hex[:6]}")
    naive.consumer.poll(timeout_ms=2000)      # join the group before traffic starts
    thread = threading.Thread(target=naive.run, daemon=True)
    thread.start()
    try:
        out["naive_push_per_event"] = measure_freshness(config, LiveTraffic(config, users, items, rate, seconds,
                                                                            probe_every))
    finally:
        naive.stop = True
        thread.join(30)
        naive.consumer.close()
    s, n = out["stream"], out["naive_push_per_event"]
    if s.get("p99_ms") and n.get("p99_ms"):
        out["p99_ratio_naive_over_stream"] = round(n["p99_ms"] / s["p99_ms"], 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=6000)
    parser.add_argument("--items", type=int, default=6000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--naive-events", type=int, default=1500)
    parser.add_argument("--rates", default="200,2000", help="freshness traffic rates, events/s")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--probe-every", type=int, default=20)
    parser.add_argument("--drivers", default="direct,faust")
    parser.add_argument("--quick", action="store_true", help="a small run (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.users, args.items, args.naive_events, args.rates, args.seconds = 800, 1000, 300, "500", 6.0

    import logging
    logging.disable(logging.WARNING)
    from usr.data.sim.config import SimConfig
    from usr.data.sim.run import simulate

    import signal

    def _terminate(signum: int, frame: Any) -> None:
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    sim_dir = work / "sim"
    stats = simulate(SimConfig().replace(n_users=args.users, n_items=args.items, days=args.days, seed=7), sim_dir,
                     progress=False)
    n_events = int(stats["events"])
    broker = Broker(work / "kafka")
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "setup": {"online_store": "feast sqlite", "broker": "apache kafka (local, 1 node)", "partitions": 4,
                  "log_events": n_events, "users": args.users, "items": args.items, "days": args.days},
    }
    try:
        tp: dict[str, Any] = {}
        for driver in args.drivers.split(","):
            tp[f"stream_{driver}"] = stream_throughput(broker, sim_dir, work, driver, n_events)
        tp["naive_push_per_event"] = naive_throughput(broker, sim_dir, work, args.naive_events)
        naive_rate = tp["naive_push_per_event"]["events_per_s"]
        for key in list(tp):
            if key.startswith("stream_"):
                tp[key]["speedup_vs_naive"] = round(tp[key]["events_per_s"] / naive_rate, 1)
        result["throughput"] = tp
        result["freshness"] = [freshness_pair(broker, sim_dir, work, float(r), args.seconds, args.probe_every)
                               for r in args.rates.split(",")]
        best = max((v for k, v in tp.items() if k.startswith("stream_")), key=lambda v: v["events_per_s"])
        result["targets"] = {
            "events_per_s_per_worker_core_>=_20000": best["events_per_cpu_s"] >= 20000,
            "freshness_p99_<_1000ms": all(f["stream"].get("p99_ms", 1e9) < 1000 for f in result["freshness"]),
        }
    finally:
        broker.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
