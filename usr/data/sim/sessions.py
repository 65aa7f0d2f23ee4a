"""Sessions: when shoppers come, what they search for, and which candidates the shop
retrieves for them (search engine or feed recommender)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usr.data.sim.history import Snapshot
from usr.data.sim.names import MODIFIERS
from usr.data.sim.sampling import sample_rows
from usr.data.sim.world import World

DAY_S = 86_400


@dataclass
class DayPlan:
    """All sessions of one day, sorted by (round, user). Round r holds every user's
    (r+1)-th session of the day, so processing rounds in order keeps each user's
    sessions in time order."""

    user: np.ndarray       # int64
    start_s: np.ndarray    # float64 seconds since the day's midnight (UTC)
    is_search: np.ndarray  # bool
    list_len: np.ndarray   # int64 items the shopper will look through
    round: np.ndarray      # int64

    @property
    def n(self) -> int:
        return int(self.user.size)


def plan_day(world: World, day_of_week: int, rng: np.random.Generator) -> DayPlan:
    """Draw the sessions of one day for all users."""
    cfg = world.config
    sc = cfg.sessions
    pop = world.users
    factor = sc.weekend_factor if day_of_week >= 5 else 1.0
    counts = rng.poisson(pop.activity * factor)
    counts[0] = 0
    user = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    n = user.size

    peaks = np.array(sc.daypart_peaks, dtype=np.float64)
    comp = sample_rows(np.log(peaks[None, :, 2]), np.zeros(n, dtype=np.int64), rng.random(n))
    hour = rng.normal(peaks[comp, 0], peaks[comp, 1])
    hour = np.where((hour < sc.first_hour) | (hour > sc.last_hour), rng.uniform(sc.first_hour, sc.last_hour, n), hour)
    t = hour * 3600.0

    order = np.lexsort((t, user))
    user, t = user[order], t[order]
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]]) if n else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, n])
    k = np.arange(n) - np.repeat(starts, sizes)
    # enforce the minimum gap: t'_k = max_j<=k (t_j + (k - j) * gap), per user
    gap = sc.min_gap_minutes * 60.0
    grp = np.repeat(np.arange(starts.size), sizes).astype(np.float64)
    big = DAY_S + (float(k.max()) + 1.0) * gap + 1.0 if n else 1.0  # separates users in one cummax
    v = np.maximum.accumulate(t - k * gap + grp * big) - grp * big + k * gap
    keep = v <= sc.last_hour * 3600.0 + 1800.0
    user, v, k = user[keep], v[keep], k[keep]
    m = user.size

    is_search = rng.random(m) < pop.search_share[user]
    mean_len = np.where(is_search, sc.search_list_mean, sc.rec_list_mean)
    lo = np.where(is_search, sc.search_list_min, sc.rec_list_min)
    hi = np.where(is_search, sc.search_list_max, sc.rec_list_max)
    # geometric scroll depth above the minimum: each further item is looked at with a fixed chance
    extra = rng.geometric(1.0 / np.maximum(mean_len - lo + 1, 1.0)) - 1
    list_len = np.minimum(lo + extra, hi).astype(np.int64)

    order = np.lexsort((user, k))
    return DayPlan(user=user[order], start_s=v[order], is_search=is_search[order],
                   list_len=list_len[order], round=k[order])


@dataclass
class Intents:
    """Search intents per session (0 for rec sessions / no brand / no modifier)."""

    cate2: np.ndarray
    brand: np.ndarray
    modifier: np.ndarray


def choose_intents(world: World, users: np.ndarray, is_search: np.ndarray, snap: Snapshot,
                   rng: np.random.Generator) -> Intents:
    """What each search session is looking for: mostly an aisle from current tastes,
    sometimes an aisle the shopper recently clicked in, sometimes with a brand or a
    price modifier."""
    cfg = world.config
    sc = cfg.search
    cat = world.catalog
    n = users.size
    cate2 = np.zeros(n, dtype=np.int64)
    brand = np.zeros(n, dtype=np.int64)
    modifier = np.zeros(n, dtype=np.int64)
    s = np.flatnonzero(is_search)
    if s.size == 0:
        return Intents(cate2, brand, modifier)

    us = users[s]
    tastes = (world.taste_rows(us)[:, 1:].astype(np.float64)
              + cfg.needs.intent_weight * world.state.need[us, 1:]) / sc.intent_temperature
    c_taste = 1 + sample_rows(tastes, np.arange(s.size), rng.random(s.size))
    n_recent = np.minimum(snap.count[s], cfg.click.recent_window)
    j = np.minimum((rng.random(s.size) * n_recent).astype(np.int64), np.maximum(n_recent - 1, 0))
    c_recent = snap.cate2[s, j]
    use_recent = (rng.random(s.size) < sc.intent_from_recent_share) & (n_recent > 0) & (c_recent > 0)
    c = np.where(use_recent, c_recent, c_taste)
    cate2[s] = c

    # brand queries: one of her brands if it is sold in that aisle, else a popular brand there
    wants_brand = rng.random(s.size) < sc.brand_query_share
    fav = world.users.fav_brands[users[s]]
    fav_pick = fav[np.arange(s.size), rng.integers(0, fav.shape[1], size=s.size)]
    fav_ok = cat.cate2_brand_ok[c, fav_pick] & (rng.random(s.size) < sc.favourite_brand_in_query)
    popular_item = world.state.samplers["cate2"].sample(c, rng.random(s.size))
    b = np.where(fav_ok, fav_pick, cat.brand[popular_item])
    brand[s] = np.where(wants_brand, b, 0)

    has_mod = rng.random(s.size) < sc.modifier_share
    modifier[s] = np.where(has_mod, rng.integers(1, len(MODIFIERS), size=s.size), 0)
    return Intents(cate2, brand, modifier)


def _component(u: np.ndarray, shares: tuple[float, ...]) -> np.ndarray:
    cum = np.cumsum(np.asarray(shares, dtype=np.float64))
    return np.searchsorted(cum / cum[-1], u, side="right")


def retrieve(world: World, users: np.ndarray, is_search: np.ndarray, intents: Intents, snap: Snapshot,
             pool_size: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pools: ``pool_size[s]`` draws per session (with replacement), then
    de-duplicated. Returns (session index, item id), grouped by session."""
    cfg = world.config
    cat = world.catalog
    smp = world.state.samplers
    sess = np.repeat(np.arange(users.size, dtype=np.int64), pool_size)
    m = sess.size
    items = np.zeros(m, dtype=np.int64)
    srch = is_search[sess]
    u_comp = rng.random(m)
    u_item = rng.random(m)
    u_aux = rng.random(m)

    # search engine: query aisle (brand-filtered for brand queries), related aisles, misses
    sc = cfg.search
    si = np.flatnonzero(srch)
    if si.size:
        comp = _component(u_comp[si], (sc.retrieve_intent, sc.retrieve_sibling, sc.retrieve_random))
        c = intents.cate2[sess[si]]
        b = intents.brand[sess[si]]
        res = np.zeros(si.size, dtype=np.int64)
        in_aisle = comp == 0
        by_brand = in_aisle & (b > 0) & (u_aux[si] < sc.retrieve_brand_within_intent)
        res[by_brand] = smp["cate2_brand"].sample(c[by_brand] * (cat.n_brands + 1) + b[by_brand], u_item[si][by_brand])
        plain = in_aisle & (res == 0)
        res[plain] = smp["cate2"].sample(c[plain], u_item[si][plain])
        sib = comp == 1
        c1 = cat.cate2_cate1[c[sib]]
        sib_c2 = (c1 - 1) * cat.cate2_per_cate1 + 1 + (u_aux[si][sib] * cat.cate2_per_cate1).astype(np.int64)
        res[sib] = smp["cate2"].sample(sib_c2, u_item[si][sib])
        rand = comp == 2
        res[rand] = smp["all"].sample(np.zeros(int(rand.sum()), dtype=np.int64), u_item[si][rand])
        items[si] = res

    # feed recommender: history aisles, recent aisles, buy-again items, trending
    rc = cfg.rec
    ri = np.flatnonzero(~srch)
    if ri.size:
        comp = _component(u_comp[ri], (rc.retrieve_history, rc.retrieve_recent, rc.retrieve_again, rc.retrieve_popular))
        row = sess[ri]
        n_all = snap.count[row]
        n_rec = np.minimum(n_all, cfg.click.recent_window)
        pick_n = np.where(comp == 1, n_rec, n_all)
        j = np.minimum((u_aux[ri] * pick_n).astype(np.int64), np.maximum(pick_n - 1, 0))
        res = np.zeros(ri.size, dtype=np.int64)
        from_aisle = ((comp == 0) | (comp == 1)) & (pick_n > 0)
        res[from_aisle] = smp["cate2"].sample(snap.cate2[row[from_aisle], j[from_aisle]], u_item[ri][from_aisle])
        # buy it again: a distinct item from her history (each item once, however often bought)
        again = (comp == 2) & (pick_n > 0)
        jd = snap.distinct_entry(row[again], u_aux[ri][again])
        res[again] = snap.item[row[again], np.maximum(jd, 0)]
        rest = res == 0
        res[rest] = smp["all"].sample(np.zeros(int(rest.sum()), dtype=np.int64), u_item[ri][rest])
        items[ri] = res

    # fallback for empty segments, then de-duplicate within the session
    empty = items == 0
    if empty.any():
        items[empty] = smp["all"].sample(np.zeros(int(empty.sum()), dtype=np.int64), rng.random(int(empty.sum())))
    key = sess * (cat.n_items + 1) + items
    uniq = np.unique(key)
    return uniq // (cat.n_items + 1), uniq % (cat.n_items + 1)
