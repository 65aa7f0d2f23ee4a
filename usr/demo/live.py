"""Live simulated shoppers against the real gateway.

Each request: a shopper from the simulated world asks for a ranking (search or feed);
the gateway ranks her candidates (features from Feast, scores from Triton); she looks
through the list and clicks and orders according to the simulator's ground truth;
what she saw and did is published to Kafka as impression, click and order events, so
the stream jobs turn it into features and labelled rows for the next retrain.

Shoppers are split between A/B arms by a stable hash of the user id.
"""
from __future__ import annotations

import hashlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from usr.config import Config
from usr.data.events import encode_event, event_key, topic_for


def arm_of(user_id: int, arms: list[str]) -> str:
    """Stable assignment: the same user always lands in the same arm."""
    h = int.from_bytes(hashlib.blake2b(str(user_id).encode(), digest_size=8).digest(), "little")
    return arms[h % len(arms)]


@dataclass
class LiveRecord:
    wall_s: float           # seconds since the live phase started
    event_ts: int           # simulated time of the request (ms)
    arm: str
    model_version: str
    fallback: bool
    latency_ms: float
    scenario: str
    shown: int
    clicks: int
    orders: int
    expected_clicks: float
    expected_orders: float
    user_id: int = 0
    # simulation only: the same request ranked by every arm's model, expected clicks and orders
    # of each ranking from the ground truth (a paired, low-variance comparison of the models)
    counterfactual: dict[str, list[float]] | None = None


class FreshnessProbe:
    """Time from publishing a click to seeing it in the user's online history
    (one background thread, one Feast store, one probe at a time)."""

    def __init__(self, config: Config, timeout_s: float = 10.0) -> None:
        self.config, self.timeout_s = config, timeout_s
        self.samples_ms: list[float] = []
        self.timeouts = 0
        self.errors: list[str] = []
        self._queue: "queue.Queue[tuple[int, int, float] | None]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def busy(self) -> bool:
        return self._queue.unfinished_tasks > 0

    def watch(self, user_id: int, item_id: int, published_at: float) -> None:
        self._queue.put((user_id, item_id, published_at))

    def _run(self) -> None:
        from features.store import open_store

        store = None
        while True:
            job = self._queue.get()
            if job is None:
                self._queue.task_done()
                return
            try:
                store = store or open_store(self.config)
                self._probe(store, *job)
            except Exception as exc:  # noqa: BLE001 - a failed probe is counted, the probe goes on
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            finally:
                self._queue.task_done()

    def _probe(self, store, user_id: int, item_id: int, published_at: float) -> None:
        while time.time() < published_at + self.timeout_s:
            got = store.get_online_features(features=["user_history:hist_item_id"],
                                            entity_rows=[{"user_id": user_id}]).to_dict()["hist_item_id"][0]
            if got and int(got[0]) == item_id:
                self.samples_ms.append((time.time() - published_at) * 1000)
                return
            time.sleep(0.01)
        self.timeouts += 1

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(self.timeout_s + 5)


def run_live(config: Config, shop, address: str, arms: dict[str, str], n_requests: int, candidates: int,
             freshness: FreshnessProbe | None = None, freshness_every: int = 25,
             on_progress: Callable[[int, LiveRecord], None] | None = None) -> list[LiveRecord]:
    """Drive ``n_requests`` live requests; ``arms``: arm name -> model name in the repository."""
    from gateway.client import RankingClient
    from usr.data.replay import make_kafka_producer

    producer = make_kafka_producer(config.kafka, acks="all")
    arm_names = sorted(arms)
    records: list[LiveRecord] = []
    probe_due = False
    t_start = time.perf_counter()
    try:
        with RankingClient(address, timeout_s=5.0) as client:
            for k in range(n_requests):
                req = shop.request(n_candidates=candidates)
                arm = arm_of(req["user_id"], arm_names)
                t0 = time.perf_counter()
                reply = client.rank(req["user_id"], req["scenario"], req["candidates"], query=req["query"] or "",
                                    query_id=req["query_id"] or 0, query_terms=req["query_terms"] or (),
                                    request_id=req["request_id"], ts_ms=req["ts"], model=arms[arm])
                latency_ms = (time.perf_counter() - t0) * 1000
                ranked = [i.item_id for i in reply.items]
                expected = shop.expected(req, ranked)
                counterfactual = {arm: [expected["expected_clicks"], expected["expected_orders"]]}
                for other in arm_names:
                    if other != arm:
                        alt = client.rank(req["user_id"], req["scenario"], req["candidates"], query=req["query"] or "",
                                          query_id=req["query_id"] or 0, query_terms=req["query_terms"] or (),
                                          request_id=f"{req['request_id']}-cf", ts_ms=req["ts"], model=arms[other])
                        e = shop.expected(req, [i.item_id for i in alt.items])
                        counterfactual[other] = [e["expected_clicks"], e["expected_orders"]]
                events = shop.respond(req, ranked)
                for ev in events:
                    producer.send(topic_for(ev.event_type, config.kafka.topics), value=encode_event(ev),
                                  key=event_key(ev))
                clicks = [ev for ev in events if ev.event_type == "click"]
                probe_due = probe_due or k % freshness_every == 0  # the next request with a click after every n-th
                if freshness is not None and clicks and probe_due and not freshness.busy():
                    probe_due = False
                    producer.flush()
                    last = max(clicks, key=lambda ev: ev.ts)
                    freshness.watch(last.user_id, last.item_id, time.time())
                rec = LiveRecord(
                    wall_s=time.perf_counter() - t_start, event_ts=int(req["ts"]), arm=arm,
                    model_version=reply.model_version, fallback=reply.fallback, latency_ms=latency_ms,
                    scenario=req["scenario"], shown=sum(ev.event_type == "impression" for ev in events),
                    clicks=len(clicks), orders=sum(ev.event_type == "order" for ev in events),
                    expected_clicks=expected["expected_clicks"], expected_orders=expected["expected_orders"],
                    user_id=int(req["user_id"]), counterfactual=counterfactual)
                records.append(rec)
                if on_progress is not None:
                    on_progress(k, rec)
        producer.flush()
    finally:
        producer.close()
    return records


def rate_ci(successes: np.ndarray, trials: np.ndarray, clusters: np.ndarray | None = None,
            z: float = 1.96) -> tuple[float, float, float]:
    """Rate with a 95% confidence interval by the delta method, clustered (by default by
    row; the A/B analysis passes the user, the unit shoppers are randomised by)."""
    s, n = successes.astype(float), trials.astype(float)
    if clusters is not None:
        _, inverse = np.unique(clusters, return_inverse=True)
        s, n = np.bincount(inverse, s), np.bincount(inverse, n)
    total = n.sum()
    if total == 0:
        return float("nan"), float("nan"), float("nan")
    rate = s.sum() / total
    m = len(n)
    if m < 2:
        return rate, float("nan"), float("nan")
    resid = s - rate * n
    se = np.sqrt(m / (m - 1) * np.sum(resid ** 2)) / total
    return rate, rate - z * se, rate + z * se


def paired_lift(records: list[LiveRecord], a: str, b: str, index: int, z: float = 1.96) -> dict[str, float]:
    """Relative difference of expected clicks (index 0) or orders (1) when the same requests
    are ranked by arm ``b``'s model instead of arm ``a``'s, with a CI clustered by user."""
    rs = [r for r in records if r.counterfactual and a in r.counterfactual and b in r.counterfactual]
    if len(rs) < 2:
        return {"lift": float("nan"), "ci95": [float("nan"), float("nan")], "requests": len(rs)}
    ya = np.array([r.counterfactual[a][index] for r in rs])
    yb = np.array([r.counterfactual[b][index] for r in rs])
    _, users = np.unique([r.user_id for r in rs], return_inverse=True)
    sa, sb = np.bincount(users, ya), np.bincount(users, yb)
    ratio = sb.sum() / sa.sum()
    m = len(sa)
    resid = sb - ratio * sa  # delta method for a ratio of sums
    se = np.sqrt(m / (m - 1) * np.sum(resid ** 2)) / sa.sum()
    return {"lift": ratio - 1.0, "ci95": [ratio - z * se - 1.0, ratio + z * se - 1.0], "requests": len(rs)}


def ab_summary(records: list[LiveRecord]) -> dict[str, Any]:
    """Per arm: online CTR and CTCVR (observed, and expected from the ground truth) with 95%
    CIs clustered by user; and the paired comparison of the models on the same requests."""
    out: dict[str, Any] = {}
    for arm in sorted({r.arm for r in records}):
        rs = [r for r in records if r.arm == arm]
        shown = np.array([r.shown for r in rs])
        users = np.array([r.user_id for r in rs])
        row: dict[str, Any] = {"requests": len(rs), "users": len(set(users.tolist())), "impressions": int(shown.sum()),
                               "fallbacks": sum(r.fallback for r in rs)}
        for name, values in (("ctr", [r.clicks for r in rs]), ("ctcvr", [r.orders for r in rs]),
                             ("expected_ctr", [r.expected_clicks for r in rs]),
                             ("expected_ctcvr", [r.expected_orders for r in rs])):
            rate, lo, hi = rate_ci(np.array(values), shown, users)
            row[name] = {"rate": rate, "ci95": [lo, hi]}
        out[arm] = row
    arms = sorted(out)
    if len(arms) == 2:
        a, b = arms
        for metric in ("ctr", "ctcvr", "expected_ctr", "expected_ctcvr"):
            ra, rb = out[a][metric]["rate"], out[b][metric]["rate"]
            out.setdefault("lift", {})[metric] = (rb / ra - 1.0) if ra > 0 else float("nan")
        out["paired"] = {"clicks": paired_lift(records, a, b, 0), "orders": paired_lift(records, a, b, 1)}
    return out
