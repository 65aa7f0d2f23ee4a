"""The simulated shop: its catalog, its shoppers, and the state that drifts day by day.

Ids are 1-based everywhere (0 = unknown/padding), so per-entity arrays have length n+1
and are indexed by id directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from usr.data.sim.config import SimConfig
from usr.data.sim.history import History
from usr.data.sim.names import MODIFIERS, Vocabulary, aisle_name, brand_names, department_name
from usr.data.sim.sampling import SegmentSampler, gumbel_top_k, sample_rows

N_DAYPARTS = 4  # night+morning (<11h), midday (<15h), afternoon (<18h), evening


def daypart_of_hour(hour: np.ndarray) -> np.ndarray:
    """Daypart index 0..3 of an hour of the day."""
    return np.searchsorted(np.array([11, 15, 18]), np.asarray(hour), side="right")


@dataclass
class Catalog:
    """Items and their attributes (arrays indexed by item id), plus the category tree."""

    n_items: int
    n_cate1: int
    n_cate2: int
    n_brands: int
    cate2_per_cate1: int
    cate1: np.ndarray          # int64[I+1]
    cate2: np.ndarray          # int64[I+1]
    brand: np.ndarray          # int64[I+1]
    price: np.ndarray          # float64[I+1] currency units
    price_z: np.ndarray        # float64[I+1] log price standardised within the aisle
    price_bucket: np.ndarray   # int32[I+1] decile of price within the aisle, 1..n
    base_logpop: np.ndarray    # float64[I+1] long-term log popularity
    cate2_cate1: np.ndarray    # int64[C2+1] department of each aisle
    brand_cate1: np.ndarray    # int64[B+1] department of each brand
    cate2_brand_ok: np.ndarray  # bool[C2+1, B+1] the aisle has items of the brand
    daypart_affinity: np.ndarray  # float64[C1+1, N_DAYPARTS]
    need_rate: np.ndarray      # float64[C2+1] need growth per day (1 / replenishment cycle)
    cate1_names: list[str]     # index = id (0 = "")
    cate2_names: list[str]
    brand_names: list[str]
    vocab: Vocabulary

    def query_text(self, cate2: int, brand: int, modifier: int) -> str:
        words = [MODIFIERS[modifier], self.brand_names[brand] if brand else "", self.cate2_names[cate2]]
        return " ".join(w for w in words if w)

    def query_id(self, cate2: np.ndarray, brand: np.ndarray, modifier: np.ndarray) -> np.ndarray:
        """A stable id per distinct (aisle, brand, modifier) query, >= 1."""
        return 1 + (np.asarray(modifier, np.int64) * (self.n_cate2 + 1) + cate2) * (self.n_brands + 1) + brand

    def to_table(self) -> pa.Table:
        ids = np.arange(1, self.n_items + 1)
        return pa.table({
            "item_id": pa.array(ids, pa.int64()),
            "cate1": pa.array(self.cate1[1:], pa.int64()),
            "cate2": pa.array(self.cate2[1:], pa.int64()),
            "brand": pa.array(self.brand[1:], pa.int64()),
            "price": pa.array(self.price[1:], pa.float64()),
            "price_bucket": pa.array(self.price_bucket[1:], pa.int32()),
            "cate1_name": pa.array([self.cate1_names[c] for c in self.cate1[1:]], pa.string()),
            "cate2_name": pa.array([self.cate2_names[c] for c in self.cate2[1:]], pa.string()),
            "brand_name": pa.array([self.brand_names[b] for b in self.brand[1:]], pa.string()),
            "latent_base_logpop": pa.array(self.base_logpop[1:], pa.float64()),
        })


@dataclass
class Population:
    """Shoppers (arrays indexed by user id). ``latent_*`` data is ground truth that no
    shop system could observe; segment and level are observable profile buckets."""

    n_users: int
    segment: np.ndarray        # int32[U+1] household type 1..S
    level: np.ndarray          # int32[U+1] loyalty tier 1..n_levels
    search_share: np.ndarray   # float64[U+1] share of her sessions that are searches
    price_beta: np.ndarray     # float64[U+1] price sensitivity (~1)
    activity: np.ndarray       # float64[U+1] mean sessions per day
    fav_brands: np.ndarray     # int64[U+1, F]
    fav_cate2: np.ndarray      # int64[U+1, n_favourite_cate2]
    taste_long: np.ndarray     # float32[U+1, C2+1] long-term taste per aisle (col 0 = -inf)

    def to_table(self) -> pa.Table:
        sl = slice(1, None)
        return pa.table({
            "user_id": pa.array(np.arange(1, self.n_users + 1), pa.int64()),
            "user_segment": pa.array(self.segment[sl], pa.int32()),
            "user_level": pa.array(self.level[sl], pa.int32()),
            "latent_search_share": pa.array(self.search_share[sl], pa.float64()),
            "latent_price_sensitivity": pa.array(self.price_beta[sl], pa.float64()),
            "latent_sessions_per_day": pa.array(self.activity[sl], pa.float64()),
            "latent_favourite_brands": pa.array(list(self.fav_brands[sl]), pa.list_(pa.int64())),
            "latent_favourite_cate2": pa.array(list(self.fav_cate2[sl]), pa.list_(pa.int64())),
        })


@dataclass
class WorldState:
    """What changes over time: taste and popularity deviations, behaviour histories."""

    day: int
    taste_dev: np.ndarray      # float32[U+1, C2+1]
    need: np.ndarray           # float32[U+1, C2+1] in [0, 1]: 0 just bought, 1 run out
    pop_dev: np.ndarray        # float64[I+1]
    history: History
    samplers: dict[str, SegmentSampler] = field(default_factory=dict)


@dataclass
class World:
    """Catalog + population + drifting state, and the samplers that depend on them."""

    config: SimConfig
    catalog: Catalog
    users: Population
    state: WorldState

    # --- derived quantities -------------------------------------------------------
    def logpop(self, items: np.ndarray | None = None) -> np.ndarray:
        lp = self.catalog.base_logpop + self.state.pop_dev
        return lp if items is None else lp[items]

    def taste(self, users: np.ndarray, cate2: np.ndarray) -> np.ndarray:
        """Current taste of ``users[j]`` for aisle ``cate2[j]``."""
        return (self.users.taste_long[users, cate2] + self.state.taste_dev[users, cate2]).astype(np.float64)

    def taste_rows(self, users: np.ndarray) -> np.ndarray:
        """Current taste vectors (n, C2+1) of ``users``."""
        return self.users.taste_long[users] + self.state.taste_dev[users]

    def refresh_samplers(self) -> None:
        """Recompute popularity-weighted samplers after popularity changed."""
        w = np.exp(self.logpop())
        w[0] = 0.0
        for s in self.state.samplers.values():
            s.set_weights(w)

    def advance_day(self, rng: np.random.Generator) -> None:
        """Drift tastes and popularity by one day (AR(1) around the long-term values)."""
        d = self.config.drift
        st = self.state
        st.taste_dev *= d.taste_rho
        st.taste_dev += rng.normal(0.0, d.taste_sigma, size=st.taste_dev.shape).astype(np.float32)
        st.pop_dev = d.popularity_rho * st.pop_dev + rng.normal(0.0, d.popularity_sigma, size=st.pop_dev.shape)
        st.pop_dev[0] = 0.0
        np.minimum(st.need + self.catalog.need_rate[None, :].astype(np.float32), 1.0, out=st.need)
        st.day += 1
        self.refresh_samplers()

    # --- persistence (for the live responder) ----------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"day": np.array(self.state.day), "taste_dev": self.state.taste_dev, "need": self.state.need,
                "pop_dev": self.state.pop_dev, **self.state.history.state_arrays()}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.state.day = int(arrays["day"])
        self.state.taste_dev = np.array(arrays["taste_dev"], dtype=np.float32)
        self.state.need = np.array(arrays["need"], dtype=np.float32)
        self.state.pop_dev = np.array(arrays["pop_dev"], dtype=np.float64)
        self.state.history = History.from_arrays(arrays)
        self.refresh_samplers()


# --- building -------------------------------------------------------------------------

def _build_catalog(cfg: SimConfig, rng: np.random.Generator) -> Catalog:
    cc = cfg.catalog
    n_c1, per = cc.n_cate1, cc.cate2_per_cate1
    n_c2 = n_c1 * per
    n_b = n_c1 * cc.brands_per_cate1
    n_items = cfg.n_items
    if n_items < 2 * n_c2:
        raise ValueError(f"n_items={n_items} is too small for {n_c2} aisles (need >= {2 * n_c2})")

    cate2_cate1 = np.r_[0, np.repeat(np.arange(1, n_c1 + 1), per)].astype(np.int64)
    brand_cate1 = np.r_[0, np.repeat(np.arange(1, n_c1 + 1), cc.brands_per_cate1)].astype(np.int64)

    # items per aisle
    share = rng.dirichlet(np.full(n_c2, cc.cate2_size_concentration))
    per_aisle = 1 + rng.multinomial(n_items - n_c2, share)
    cate2 = np.r_[0, np.repeat(np.arange(1, n_c2 + 1), per_aisle)].astype(np.int64)
    cate1 = cate2_cate1[cate2]
    cate1[0] = 0

    # brands: Zipf shares within the department, perturbed per aisle
    ranks = np.arange(1, cc.brands_per_cate1 + 1)
    zipf = ranks ** -cc.brand_zipf
    brand = np.zeros(n_items + 1, dtype=np.int64)
    brand_logshare = np.zeros(n_b + 1)
    for c2 in range(1, n_c2 + 1):
        c1 = cate2_cate1[c2]
        first_brand = (c1 - 1) * cc.brands_per_cate1 + 1
        p = zipf * np.exp(rng.normal(0, 0.5, size=zipf.size))
        p /= p.sum()
        idx = np.flatnonzero(cate2 == c2)
        brand[idx] = first_brand + rng.choice(zipf.size, size=idx.size, p=p)
    for c1 in range(1, n_c1 + 1):
        first_brand = (c1 - 1) * cc.brands_per_cate1 + 1
        brand_logshare[first_brand:first_brand + zipf.size] = np.log(zipf / zipf.sum())
    cate2_brand_ok = np.zeros((n_c2 + 1, n_b + 1), dtype=bool)
    cate2_brand_ok[cate2[1:], brand[1:]] = True

    # prices: aisle level, brand premium, item spread
    aisle_logprice = rng.normal(np.log(3.0), 0.8, size=n_c2 + 1)
    brand_premium = rng.normal(0.0, 0.2, size=n_b + 1)
    logprice = aisle_logprice[cate2] + brand_premium[brand] + rng.normal(0.0, cc.price_sigma, size=n_items + 1)
    logprice[0] = 0.0
    price = np.round(np.exp(logprice), 2)
    price = np.maximum(price, 0.1)
    lp = np.log(price)
    sums = np.bincount(cate2, weights=lp, minlength=n_c2 + 1)
    sqs = np.bincount(cate2, weights=lp * lp, minlength=n_c2 + 1)
    cnt = np.maximum(np.bincount(cate2, minlength=n_c2 + 1), 1)
    mean = sums / cnt
    sd = np.sqrt(np.maximum(sqs / cnt - mean ** 2, 1e-6))
    price_z = (lp - mean[cate2]) / np.maximum(sd[cate2], 0.05)
    price_z[0] = 0.0
    # decile of price within the aisle
    order = np.lexsort((lp, cate2))
    aisle_start = np.searchsorted(cate2[order], cate2[order], side="left")
    rank_in_aisle = np.arange(order.size) - aisle_start
    bucket = np.zeros(n_items + 1, dtype=np.int32)
    bucket[order] = (1 + (rank_in_aisle * cc.n_price_buckets) // cnt[cate2[order]]).astype(np.int32)
    bucket[0] = 0

    # popularity: item appeal + brand size
    bls = brand_logshare[brand]
    bls_z = (bls - bls[1:].mean()) / max(bls[1:].std(), 1e-6)
    base_logpop = rng.normal(0.0, cc.popularity_sigma, size=n_items + 1) + 0.3 * bls_z
    base_logpop[0] = -np.inf

    cate1_names = [""] + [department_name(c) for c in range(1, n_c1 + 1)]
    cate2_names = [""] + [aisle_name(int(cate2_cate1[c]), (c - 1) % per) for c in range(1, n_c2 + 1)]
    bnames = [""] + brand_names(n_b, seed=cfg.seed + 7919)
    vocab = Vocabulary([m for m in MODIFIERS] + cate2_names + bnames)

    daypart = rng.normal(0.0, cfg.click.daypart_sigma, size=(n_c1 + 1, N_DAYPARTS))
    daypart[0] = 0.0
    cycle = cfg.needs.cycle_days_median * np.exp(rng.normal(0.0, cfg.needs.cycle_days_sigma, size=n_c2 + 1))
    need_rate = 1.0 / np.maximum(cycle, 1.0)
    need_rate[0] = 0.0

    return Catalog(
        n_items=n_items, n_cate1=n_c1, n_cate2=n_c2, n_brands=n_b, cate2_per_cate1=per,
        cate1=cate1, cate2=cate2, brand=brand, price=price, price_z=price_z, price_bucket=bucket,
        base_logpop=base_logpop, cate2_cate1=cate2_cate1, brand_cate1=brand_cate1,
        cate2_brand_ok=cate2_brand_ok, daypart_affinity=daypart, need_rate=need_rate,
        cate1_names=cate1_names, cate2_names=cate2_names, brand_names=bnames, vocab=vocab,
    )


def _build_population(cfg: SimConfig, cat: Catalog, rng: np.random.Generator) -> Population:
    uc = cfg.users
    n = cfg.n_users
    n_c2 = cat.n_cate2
    segment = rng.integers(1, uc.n_segments + 1, size=n + 1).astype(np.int32)
    segment[0] = 0

    global_taste = rng.normal(0.0, uc.global_taste_sigma, size=n_c2 + 1)
    seg_taste = rng.normal(0.0, uc.segment_taste_sigma, size=(uc.n_segments + 1, n_c2 + 1))
    base = global_taste[None, :] + seg_taste[segment]
    taste = base + rng.normal(0.0, uc.individual_taste_sigma, size=(n + 1, n_c2 + 1))
    fav = 1 + gumbel_top_k(base[:, 1:], uc.n_favourite_cate2, rng)   # staples follow household needs
    np.put_along_axis(taste, fav, np.take_along_axis(taste, fav, axis=1) + uc.favourite_boost, axis=1)
    taste[:, 0] = -30.0
    taste = taste.astype(np.float32)

    # favourite brands: a department by taste, then a brand by market share
    dept_taste = np.stack([np.logaddexp.reduce(taste[:, 1:][:, cat.cate2_cate1[1:] == c1], axis=1)
                           for c1 in range(1, cat.n_cate1 + 1)], axis=1)
    bpc = cfg.catalog.brands_per_cate1
    zipf = np.arange(1, bpc + 1) ** -cfg.catalog.brand_zipf
    zipf_logits = np.log(zipf / zipf.sum())[None, :]
    F = uc.n_favourite_brands
    rows = np.repeat(np.arange(n + 1), F)
    c1_pick = 1 + sample_rows(dept_taste, rows, rng.random(rows.size))
    b_pick = sample_rows(zipf_logits, np.zeros(rows.size, dtype=np.int64), rng.random(rows.size))
    fav_brands = ((c1_pick - 1) * bpc + 1 + b_pick).reshape(n + 1, F).astype(np.int64)
    fav_brands[0] = 0

    price_beta = np.exp(rng.normal(0.0, uc.price_sensitivity_sigma, size=n + 1) - uc.price_sensitivity_sigma ** 2 / 2)
    search_share = rng.beta(uc.search_share_alpha, uc.search_share_beta, size=n + 1)
    activity = rng.gamma(uc.activity_shape, uc.sessions_per_day / uc.activity_shape, size=n + 1)
    noisy = np.log(activity + 1e-3) + rng.normal(0.0, 0.5, size=n + 1)
    level = (1 + (np.argsort(np.argsort(noisy)) * uc.n_levels) // (n + 1)).astype(np.int32)
    for arr in (price_beta, search_share, activity):
        arr[0] = 0.0
    level[0] = 0
    return Population(n_users=n, segment=segment, level=level, search_share=search_share,
                      price_beta=price_beta, activity=activity, fav_brands=fav_brands,
                      fav_cate2=fav.astype(np.int64), taste_long=taste)


def build_world(cfg: SimConfig) -> World:
    """Build catalog, population, samplers and prior histories, deterministically from the seed."""
    rng = np.random.default_rng([cfg.seed, 0])
    catalog = _build_catalog(cfg, rng)
    users = _build_population(cfg, catalog, rng)
    samplers = {
        "all": SegmentSampler(np.zeros(catalog.n_items + 1, dtype=np.int64), 1),
        "cate2": SegmentSampler(catalog.cate2, catalog.n_cate2 + 1),
        "cate2_brand": SegmentSampler(catalog.cate2 * (catalog.n_brands + 1) + catalog.brand,
                                      (catalog.n_cate2 + 1) * (catalog.n_brands + 1)),
    }
    state = WorldState(
        day=0,
        taste_dev=np.zeros((cfg.n_users + 1, catalog.n_cate2 + 1), dtype=np.float32),
        # time since the last purchase is spread over the cycle: need starts uniform
        need=rng.random((cfg.n_users + 1, catalog.n_cate2 + 1), dtype=np.float32),
        pop_dev=np.zeros(catalog.n_items + 1),
        history=History(cfg.n_users, cfg.history.length),
        samplers=samplers,
    )
    # start the drifting deviations from their stationary distributions
    d = cfg.drift
    state.taste_dev[:] = rng.normal(0.0, d.taste_sigma / np.sqrt(1 - d.taste_rho ** 2), size=state.taste_dev.shape)
    state.pop_dev = rng.normal(0.0, d.popularity_sigma / np.sqrt(1 - d.popularity_rho ** 2), size=catalog.n_items + 1)
    state.pop_dev[0] = 0.0
    world = World(config=cfg, catalog=catalog, users=users, state=state)
    world.refresh_samplers()
    from usr.data.sim.prior import fill_prior_history  # uses the ground truth, which needs World
    fill_prior_history(world, rng)
    return world
