"""The log generator: simulates the shop one day at a time, vectorised over users.

A day is processed in rounds: round r holds the (r+1)-th session of every user who has
one, so each user's sessions run in time order and each session sees the history as it
was when it started (point-in-time correct), while all users advance together.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usr.data.sim.config import SimConfig
from usr.data.sim.history import Snapshot
from usr.data.sim.sessions import DayPlan, Intents, choose_intents, plan_day, retrieve
from usr.data.sim.truth import Context, appeal, probabilities
from usr.data.sim.sampling import sigmoid
from usr.data.sim.world import World, build_world
from usr.data.tables import ACTION_CLICK, ACTION_ORDER, SOURCE_REC, SOURCE_SEARCH


@dataclass
class SessionBatch:
    """Sessions of one day (or one live request): per-session arrays of length n_sessions."""

    user: np.ndarray
    start_s: np.ndarray
    is_search: np.ndarray
    list_len: np.ndarray
    intents: Intents
    snapshot: Snapshot


@dataclass
class Shown:
    """Impressions (what the shopper looked through), grouped by session, in position order."""

    sess: np.ndarray        # index into the SessionBatch
    item: np.ndarray
    position: np.ndarray
    p_click: np.ndarray
    p_ctcvr: np.ndarray
    click: np.ndarray       # bool
    order: np.ndarray       # bool, implies click


@dataclass
class DayResult:
    day: int
    sessions: SessionBatch
    shown: Shown


def rank_within_session(sess: np.ndarray, score: np.ndarray, n_sessions: int) -> tuple[np.ndarray, np.ndarray]:
    """Order of candidates by (session, score descending) and each one's 0-based rank."""
    order = np.lexsort((-score, sess))
    s_sorted = sess[order]
    starts = np.searchsorted(s_sorted, np.arange(n_sessions), side="left")
    rank = np.arange(order.size) - starts[s_sorted]
    return order, rank


def respond(world: World, sessions: SessionBatch, cand_sess: np.ndarray, cand_item: np.ndarray,
            cand_position: np.ndarray, rng: np.random.Generator) -> Shown:
    """Shoppers react to items shown at given positions: draw clicks, then orders, from the
    ground truth, and append the clicks to their histories. Candidates must be grouped by
    session in position order."""
    hour = (sessions.start_s[cand_sess] // 3600).astype(np.int64) % 24
    ctx = Context(users=sessions.user[cand_sess], items=cand_item, is_search=sessions.is_search[cand_sess],
                  intent_cate2=sessions.intents.cate2[cand_sess], query_brand=sessions.intents.brand[cand_sess],
                  modifier=sessions.intents.modifier[cand_sess], hour=hour,
                  snapshot=sessions.snapshot, snap_row=cand_sess)
    ap = appeal(world, ctx)
    p_click, p_ctcvr = probabilities(world, ap, cand_position, ctx.is_search)
    click = rng.random(cand_item.size) < p_click
    order = click & (rng.random(cand_item.size) < sigmoid(ap.order_logit))
    c = np.flatnonzero(click)
    cat = world.catalog
    o = np.flatnonzero(order)
    world.state.need[sessions.user[cand_sess[o]], cat.cate2[cand_item[o]]] = 0.0  # restocked
    world.state.history.append(
        sessions.user[cand_sess[c]], cand_item[c], cat.cate2[cand_item[c]], cat.brand[cand_item[c]],
        np.where(ctx.is_search[c], SOURCE_SEARCH, SOURCE_REC).astype(np.int8),
        np.where(order[c], ACTION_ORDER, ACTION_CLICK).astype(np.int8))
    return Shown(sess=cand_sess, item=cand_item, position=cand_position.astype(np.int64),
                 p_click=p_click, p_ctcvr=p_ctcvr, click=click, order=order)


def simulate_sessions(world: World, user: np.ndarray, start_s: np.ndarray, is_search: np.ndarray,
                      list_len: np.ndarray, rng: np.random.Generator) -> tuple[SessionBatch, Shown]:
    """One session per user (users distinct): intent, retrieval, logged ranking by the shop's
    production ranker, what the shopper looks through, and her reaction."""
    cfg = world.config
    snap = world.state.history.snapshot(user)
    intents = choose_intents(world, user, is_search, snap, rng)
    batch = SessionBatch(user=user, start_s=start_s, is_search=is_search, list_len=list_len,
                         intents=intents, snapshot=snap)
    pool = np.ceil(list_len * cfg.sessions.pool_factor).astype(np.int64)
    cs, ci = retrieve(world, user, is_search, intents, snap, pool, rng)
    # the production ranker sees the attractiveness it can know, plus noise
    hour = (start_s[cs] // 3600).astype(np.int64) % 24
    ctx = Context(users=user[cs], items=ci, is_search=is_search[cs], intent_cate2=intents.cate2[cs],
                  query_brand=intents.brand[cs], modifier=intents.modifier[cs], hour=hour,
                  snapshot=snap, snap_row=cs)
    known = appeal(world, ctx).known_logit
    score = cfg.policy.skill * known + cfg.policy.noise_sigma * rng.standard_normal(cs.size)
    order, rank = rank_within_session(cs, score, user.size)
    keep = rank < list_len[cs[order]]
    sel = order[keep]
    shown = respond(world, batch, cs[sel], ci[sel], rank[keep], rng)
    return batch, shown


def _concat_batches(parts: list[tuple[SessionBatch, Shown]]) -> tuple[SessionBatch, Shown]:
    offsets = np.cumsum([0] + [b.user.size for b, _ in parts])
    sessions = SessionBatch(
        user=np.concatenate([b.user for b, _ in parts]),
        start_s=np.concatenate([b.start_s for b, _ in parts]),
        is_search=np.concatenate([b.is_search for b, _ in parts]),
        list_len=np.concatenate([b.list_len for b, _ in parts]),
        intents=Intents(*(np.concatenate([getattr(b.intents, f) for b, _ in parts]) for f in ("cate2", "brand", "modifier"))),
        snapshot=Snapshot.concat([b.snapshot for b, _ in parts]),
    )
    shown = Shown(
        sess=np.concatenate([s.sess + off for (_, s), off in zip(parts, offsets[:-1])]),
        **{f: np.concatenate([getattr(s, f) for _, s in parts])
           for f in ("item", "position", "p_click", "p_ctcvr", "click", "order")},
    )
    return sessions, shown


class Simulator:
    """Runs the shop day by day. ``world`` holds the state after the last simulated day."""

    def __init__(self, config: SimConfig):
        self.config = config
        self.world = build_world(config)
        self.start_weekday = int(np.datetime64(config.sessions.start_date, "D").astype("datetime64[D]").view("int64") + 3) % 7
        self.start_ms = int(np.datetime64(config.sessions.start_date, "ms").astype("int64"))
        self._warm = False

    def day_start_ms(self, day: int) -> int:
        return self.start_ms + day * 86_400_000

    def warm_up(self) -> None:
        """Simulate ``history.warmup_days`` unlogged days before day 0 (once)."""
        if self._warm:
            return
        w = self.config.history.warmup_days
        for k in range(w):
            self._simulate_day(np.random.default_rng([self.config.seed, 4, k]),
                               (self.start_weekday - w + k) % 7)
            self.world.advance_day(np.random.default_rng([self.config.seed, 5, k]))
        self.world.state.day = 0
        self._warm = True

    def run_day(self, day: int) -> DayResult:
        """Simulate day ``day`` of the log (days must be run in order 0, 1, 2, ...)."""
        self.warm_up()
        if day != self.world.state.day:
            raise ValueError(f"expected day {self.world.state.day}, got {day}")
        sessions, shown = self._simulate_day(np.random.default_rng([self.config.seed, 1, day]),
                                             (self.start_weekday + day) % 7)
        # tomorrow's tastes, popularity and needs
        self.world.advance_day(np.random.default_rng([self.config.seed, 2, day]))
        return DayResult(day=day, sessions=sessions, shown=shown)

    def _simulate_day(self, rng: np.random.Generator, weekday: int) -> tuple[SessionBatch, Shown]:
        plan: DayPlan = plan_day(self.world, weekday, rng)
        parts = []
        if plan.n:
            bounds = np.searchsorted(plan.round, np.arange(int(plan.round.max()) + 2))
            for r in range(bounds.size - 1):
                s = slice(bounds[r], bounds[r + 1])
                if bounds[r + 1] > bounds[r]:
                    parts.append(simulate_sessions(self.world, plan.user[s], plan.start_s[s], plan.is_search[s],
                                                   plan.list_len[s], rng))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            parts.append((SessionBatch(empty, empty.astype(float), empty.astype(bool), empty,
                                       Intents(empty, empty, empty), self.world.state.history.snapshot(empty)),
                          Shown(empty, empty, empty, empty.astype(float), empty.astype(float),
                                empty.astype(bool), empty.astype(bool))))
        return _concat_batches(parts)
