"""Simulated shoppers as live users: they send requests and react to what a ranker serves.

    shop = LiveShop.from_dir("/tmp/sim1m", seed=1)     # the world as the log left it
    req = shop.request()                               # user, scenario, query, candidates
    ranked = my_ranker(req)                            # any order of (some) candidate ids
    events = shop.respond(req, ranked)                 # impressions, clicks, orders

Reactions are drawn from the same ground truth as the simulated log
(:mod:`usr.data.sim.truth`), with position bias applied to the *served* order: a better
ranking earns more clicks and orders. Responding updates the shopper's history and
needs, so later requests see her new behaviour. :meth:`LiveShop.expected` gives the
expected clicks and orders of a ranking without drawing anything (for low-variance
A/B comparisons).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from usr.data.events import Event
from usr.data.sim.config import SimConfig
from usr.data.sim.generator import SessionBatch, Simulator, respond
from usr.data.sim.run import STATE_FILE, load_config_from_dir
from usr.data.sim.sessions import choose_intents, retrieve
from usr.data.sim.truth import Context, appeal, probabilities
from usr.data.sim.world import World, build_world

MS_DAY = 86_400_000


@dataclass
class _Pending:
    batch: SessionBatch
    list_len: int
    ts: int
    candidates: frozenset[int]
    query: str


class LiveShop:
    """Live shoppers drawn from a simulated world (see the module docstring)."""

    def __init__(self, world: World, seed: int = 0, start_ms: int | None = None,
                 mean_gap_ms: float = 2_000.0, run_id: str | None = None):
        """``start_ms``: clock of the first request (default: the morning after the world's
        last day); ``mean_gap_ms``: mean time between requests; ``run_id``: prefix of
        request and event ids (default ``live<seed>``) -- give each run against the same
        stack its own, since downstream writes are idempotent by event id."""
        self.world = world
        self.rng = np.random.default_rng([world.config.seed, 9, seed])
        cfg = world.config
        first_day_ms = int(np.datetime64(cfg.sessions.start_date, "ms").astype("int64"))
        self.clock_ms = start_ms if start_ms is not None else (
            first_day_ms + world.state.day * MS_DAY + int(cfg.sessions.first_hour * 3_600_000))
        self._day_ms = first_day_ms + world.state.day * MS_DAY
        self.mean_gap_ms = mean_gap_ms
        self._pending: dict[str, _Pending] = {}
        self._counter = 0
        self._seed = seed
        self.run_id = run_id or f"live{seed}"
        act = world.users.activity.copy()
        act[0] = 0.0
        self._user_p = act / act.sum()

    # --- construction ---------------------------------------------------------------
    @classmethod
    def from_dir(cls, sim_dir: str | Path, seed: int = 0, **kwargs: Any) -> "LiveShop":
        """The world of a simulated log directory, in the state its last day left it."""
        cfg = load_config_from_dir(sim_dir)
        world = build_world(cfg)
        with np.load(Path(sim_dir) / STATE_FILE) as arrays:
            world.load_state_arrays(dict(arrays))
        return cls(world, seed=seed, **kwargs)

    @classmethod
    def from_config(cls, config: SimConfig, seed: int = 0, **kwargs: Any) -> "LiveShop":
        """A fresh world (after its warm-up days), without writing any log."""
        sim = Simulator(config)
        sim.warm_up()
        return cls(sim.world, seed=seed, **kwargs)

    # --- requests -------------------------------------------------------------------
    def _tick(self) -> int:
        self.clock_ms += int(self.rng.exponential(self.mean_gap_ms)) + 1
        while self.clock_ms >= self._day_ms + MS_DAY:     # a new day: tastes, popularity, needs move
            self.world.advance_day(np.random.default_rng([self.world.config.seed, 10, self._seed, self.world.state.day]))
            self._day_ms += MS_DAY
        return self.clock_ms

    def request(self, user_id: int | None = None, scenario: str | None = None,
                n_candidates: int = 100) -> dict[str, Any]:
        """A new request: a shopper (drawn by activity unless given), her scenario (by her
        search share unless given), the query for search, and ``n_candidates`` (50-200
        typical) retrieved candidate item ids in no particular order."""
        w = self.world
        cat = w.catalog
        if user_id is None:
            user_id = int(self.rng.choice(self._user_p.size, p=self._user_p))
        if not 1 <= user_id <= w.users.n_users:
            raise ValueError(f"user_id {user_id} is outside 1..{w.users.n_users}")
        if scenario is None:
            scenario = "search" if self.rng.random() < w.users.search_share[user_id] else "rec"
        if scenario not in ("search", "rec"):
            raise ValueError(f"unknown scenario {scenario!r}")
        if n_candidates < 1:
            raise ValueError("n_candidates must be >= 1")
        ts = self._tick()
        users = np.array([user_id], dtype=np.int64)
        is_search = np.array([scenario == "search"])
        snap = w.state.history.snapshot(users)
        intents = choose_intents(w, users, is_search, snap, self.rng)
        sc = w.config.sessions
        mean, lo, hi = ((sc.search_list_mean, sc.search_list_min, sc.search_list_max) if scenario == "search"
                        else (sc.rec_list_mean, sc.rec_list_min, sc.rec_list_max))
        list_len = int(min(lo + self.rng.geometric(1.0 / max(mean - lo + 1, 1.0)) - 1, hi))
        _, items = retrieve(w, users, is_search, intents, snap, np.array([2 * n_candidates]), self.rng)
        if items.size < n_candidates:   # small aisles: top up with popular items
            extra = w.state.samplers["all"].sample(np.zeros(4 * n_candidates, dtype=np.int64),
                                                   self.rng.random(4 * n_candidates))
            items = np.unique(np.r_[items, extra])
        items = self.rng.permutation(items)[:n_candidates]
        start_s = (ts - self._day_ms) / 1000.0
        batch = SessionBatch(user=users, start_s=np.array([start_s]), is_search=is_search,
                             list_len=np.array([list_len]), intents=intents, snapshot=snap)
        self._counter += 1
        request_id = f"{self.run_id}-{self._counter}"
        query = ""
        query_id = 0
        terms: list[int] = []
        if scenario == "search":
            c2, b, m = int(intents.cate2[0]), int(intents.brand[0]), int(intents.modifier[0])
            query = cat.query_text(c2, b, m)
            query_id = int(cat.query_id(np.array([c2]), np.array([b]), np.array([m]))[0])
            terms = cat.vocab.terms(query)
        self._pending[request_id] = _Pending(batch=batch, list_len=list_len, ts=ts,
                                             candidates=frozenset(int(i) for i in items), query=query)
        return {
            "request_id": request_id, "user_id": user_id, "scenario": scenario, "query": query,
            "query_id": query_id, "query_terms": terms, "ts": ts,
            "user_segment": int(w.users.segment[user_id]), "user_level": int(w.users.level[user_id]),
            "candidates": [int(i) for i in items],
        }

    # --- reactions ------------------------------------------------------------------
    def _shown(self, request: dict[str, Any], ranked_item_ids: Sequence[int]) -> tuple[_Pending, np.ndarray]:
        p = self._pending.get(request["request_id"])
        if p is None:
            raise ValueError(f"unknown or already answered request {request['request_id']!r}")
        items = np.asarray(list(ranked_item_ids), dtype=np.int64)
        if np.unique(items).size != items.size:
            raise ValueError("ranked_item_ids contains duplicates")
        bad = [int(i) for i in items if int(i) not in p.candidates]
        if bad:
            raise ValueError(f"ranked_item_ids contains items that were not candidates: {bad[:5]}")
        return p, items[:p.list_len]

    def _truth(self, p: _Pending, items: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.zeros(items.size, dtype=np.int64)
        b = p.batch
        hour = np.full(items.size, int(b.start_s[0] // 3600) % 24)
        ctx = Context(users=b.user[rows], items=items, is_search=b.is_search[rows],
                      intent_cate2=b.intents.cate2[rows], query_brand=b.intents.brand[rows],
                      modifier=b.intents.modifier[rows], hour=hour, snapshot=b.snapshot, snap_row=rows)
        return probabilities(self.world, appeal(self.world, ctx), positions, ctx.is_search)

    def expected(self, request: dict[str, Any], ranked_item_ids: Sequence[int]) -> dict[str, Any]:
        """Expected clicks and orders of serving this ranking (no draw, no side effects)."""
        p, shown = self._shown(request, ranked_item_ids)
        p_click, p_ctcvr = self._truth(p, shown, np.arange(shown.size))
        return {"shown": int(shown.size), "expected_clicks": float(p_click.sum()),
                "expected_orders": float(p_ctcvr.sum()), "p_click": p_click.tolist(), "p_ctcvr": p_ctcvr.tolist()}

    def oracle_scores(self, request: dict[str, Any]) -> dict[str, list[float]]:
        """True P(click) and P(click and order) of every candidate if shown at the top:
        the oracle ranker's scores (the ceiling for any model), in candidate order."""
        p = self._pending.get(request["request_id"])
        if p is None:
            raise ValueError(f"unknown or already answered request {request['request_id']!r}")
        items = np.asarray(request["candidates"], dtype=np.int64)
        p_click, p_ctcvr = self._truth(p, items, np.zeros(items.size))
        return {"p_click": p_click.tolist(), "p_ctcvr": p_ctcvr.tolist()}

    def respond(self, request: dict[str, Any], ranked_item_ids: Sequence[int]) -> list[Event]:
        """The shopper looks through the served list top-down (as far as she scrolls),
        clicks and orders. Returns impression, click and order events in time order."""
        p, shown = self._shown(request, ranked_item_ids)
        del self._pending[request["request_id"]]
        cfg = self.world.config
        rows = np.zeros(shown.size, dtype=np.int64)
        res = respond(self.world, p.batch, rows, shown, np.arange(shown.size), self.rng)
        scenario = request["scenario"]
        ms_pos = cfg.sessions.search_ms_per_position if scenario == "search" else cfg.sessions.rec_ms_per_position
        page_ms = int(cfg.sessions.product_page_s * 1000)
        user = int(request["user_id"])
        rid = request["request_id"]
        events: list[Event] = []
        t = p.ts
        last_seen = p.ts
        for k in range(shown.size):
            item = int(shown[k])
            common = dict(request_id=rid, user_id=user, item_id=item, scenario=scenario, position=k, query=p.query)
            events.append(Event(event_type="impression", event_id=f"{rid}-i{k}", ts=t, **common))
            last_seen = t
            if res.click[k]:
                events.append(Event(event_type="click", event_id=f"{rid}-c{k}", ts=t + int(0.5 * ms_pos), **common))
                t += page_ms
            t += ms_pos
        lo, hi = cfg.order.checkout_delay_s
        checkout = last_seen + int(self.rng.uniform(lo, hi) * 1000)
        for k in np.flatnonzero(res.order):
            events.append(Event(event_type="order", event_id=f"{rid}-o{k}", request_id=rid, user_id=user,
                                item_id=int(shown[k]), scenario=scenario, position=int(k),
                                ts=checkout + int(k), query=p.query))
        return events
